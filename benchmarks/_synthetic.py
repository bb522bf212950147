"""Synthetic RLAIF-V-like data for the benchmarks: JPEG photos-sized images, multi-sentence answers."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
OBJECTS = ["cat", "dog", "car", "tree", "cup", "chair", "bicycle", "person", "boat", "clock"]


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A JPEG with a few coloured shapes on a gradient (compresses like a photo, decodes like one)."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(20, 120)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def answer(rng: random.Random, sentences: int, hallucinate: bool) -> str:
    parts = []
    for i in range(sentences):
        colour, obj = rng.choice(COLOURS), rng.choice(OBJECTS)
        size = "small" if rng.random() < 0.5 else "large"
        # A random count makes every sentence unique: the benchmark gains nothing from duplicates.
        parts.append(
            f"In the {'left' if i % 2 else 'right'} part of the picture there is a {colour} {obj}, "
            f"which looks {size} next to the other {rng.randrange(10**6)} objects."
        )
    if hallucinate:
        parts.append(f"There are also {rng.randrange(10**6)} {rng.choice(COLOURS)} {rng.choice(OBJECTS)}s.")
    return " ".join(parts)


def rows(
    n: int, seed: int = 0, distinct_images: int = 200, size: tuple[int, int] = (640, 480), sentences: int = 5
) -> list[dict[str, Any]]:
    """``n`` RLAIF-V-shaped rows; images are drawn from a pool (RLAIF-V has ~1.7 pairs per image)."""
    rng = random.Random(seed)
    pool = [jpeg(seed * 100_000 + i, size) for i in range(min(distinct_images, n))]
    out = []
    for i in range(n):
        out.append(
            {
                "ds_name": "synthetic",
                "image": {"bytes": pool[i % len(pool)], "path": f"{i % len(pool)}.jpg"},
                "question": f"Describe the image in detail. ({i})",
                "chosen": answer(rng, sentences, False),
                "rejected": answer(rng, sentences, True),
                "origin_dataset": "synthetic",
                "origin_split": "train",
                "idx": i,
                "image_path": f"{i % len(pool)}.jpg",
            }
        )
    return out


def write_rlaif_v(folder: Path, n: int, shard_rows: int = 1000, **kwargs: Any) -> Path:
    """``n`` rows as RLAIF-V-style Parquet shards in ``folder``, written shard by shard."""
    folder.mkdir(parents=True, exist_ok=True)
    all_rows = rows(n, **kwargs)
    for k, start in enumerate(range(0, n, shard_rows)):
        table = pa.Table.from_pylist(all_rows[start : start + shard_rows])
        pq.write_table(table, folder / f"RLAIF-V-Dataset_{k:03d}.parquet", row_group_size=100)
    return folder


def write_dama_json(folder: Path, n: int, **kwargs: Any) -> Path:
    """``n`` rows in the DAMA authors' layout: ``folder/pairs.json`` (one JSON list of question,
    chosen, rejected, image_path, idx) + ``folder/<k>.jpg``; returns the JSON file."""
    folder.mkdir(parents=True, exist_ok=True)
    all_rows = rows(n, **kwargs)
    written: set[str] = set()
    for row in all_rows:
        image = row.pop("image")
        if image["path"] not in written:
            (folder / image["path"]).write_bytes(image["bytes"])
            written.add(image["path"])
    (folder / "pairs.json").write_text(json.dumps(all_rows))
    return folder / "pairs.json"
