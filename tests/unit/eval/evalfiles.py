"""Helpers of the evaluation tests: benchmark files in their real formats, written small."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from damo.config import DamoConfig, load_config
from damo.eval.items import BenchContext

# The format of RLAIF-V's synonyms_refine.txt (class name first, ", "-separated), with a subset of
# classes and synonyms written for these tests — the real list is CC BY-NC and is not vendored.
SYNONYMS = """person, girl, boy, man, woman, child, baby, people, player
bicycle, bike
car, van, cab
dog, puppy, pup
elephant
tie, bow, bow tie
chair, seat, stool
dining table, table, desk, coffee table
toilet, urinal
cell phone, phone, phon
hot dog
teddy bear, teddybear
wine glass
skis, ski
"""
# Real COCO category ids (not contiguous).
CATEGORIES = {1: "person", 2: "bicycle", 3: "car", 18: "dog", 22: "elephant", 32: "tie", 35: "skis",
              46: "wine glass", 58: "hot dog", 62: "chair", 67: "dining table", 70: "toilet",
              77: "cell phone", 88: "teddy bear"}


def png(colour: str = "red", size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def coco_annotations(folder: Path, instances: dict[int, list[int]], captions: dict[int, list[str]],
                     train_captions: dict[int, list[str]]) -> Path:
    """instances_val2014.json, captions_val2014.json and captions_train2014.json in COCO's layout."""
    categories = [{"id": i, "name": n, "supercategory": "x"} for i, n in CATEGORIES.items()]
    image_ids = sorted({*instances, *captions, *train_captions})
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": 8, "height": 8}
              for i in image_ids]
    anns = [{"id": n, "image_id": img, "category_id": cat, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}
            for n, (img, cat) in enumerate((i, c) for i, cats in instances.items() for c in cats)]
    write_json(folder / "instances_val2014.json", {"images": images, "annotations": anns,
                                                   "categories": categories})
    for name, caps in (("captions_val2014.json", captions), ("captions_train2014.json", train_captions)):
        rows = [{"id": n, "image_id": i, "caption": c}
                for n, (i, c) in enumerate((i, c) for i, cs in caps.items() for c in cs)]
        write_json(folder / name, {"images": images, "annotations": rows})
    return folder


def context(tmp_path: Path, overrides: list[str] | None = None, generate: bool = True) -> BenchContext:
    config: DamoConfig = load_config(None, overrides or [])
    return BenchContext(config, tmp_path / "out", tmp_path / "cache", generate=generate)


def coco_synonyms(tmp_path: Path) -> Path:
    path = tmp_path / "synonyms_refine.txt"
    path.write_text(SYNONYMS)
    return path
