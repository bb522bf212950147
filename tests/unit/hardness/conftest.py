"""A tiny random open_clip model in the hf-hub folder layout, and small preference datasets."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import open_clip
import pyarrow as pa
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from damo.data.dataset import BASE_SCHEMA, DatasetWriter

CONTEXT = 16  # short, like the tiny world's CLIP: long responses must be split to fit
MODEL_CFG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": CONTEXT, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_tiny_clip(seed: int = 0) -> open_clip.CLIP:
    torch.manual_seed(seed)
    return open_clip.CLIP(
        MODEL_CFG["embed_dim"],
        open_clip.CLIPVisionCfg(**MODEL_CFG["vision_cfg"]),
        open_clip.CLIPTextCfg(**MODEL_CFG["text_cfg"]),
    ).eval()


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``open_clip_config.json`` + ``open_clip_model.safetensors``: the tiny world's ``clip/`` layout."""
    return make_clip_folder(tmp_path_factory.mktemp("clip"))


def make_clip_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": MODEL_CFG, "preprocess_cfg": preprocess})
    )
    save_file(
        {k: v.contiguous() for k, v in build_tiny_clip().state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )
    return folder


def image_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
RGB = {
    "red": (220, 20, 20),
    "green": (20, 200, 20),
    "blue": (20, 20, 220),
    "yellow": (230, 230, 0),
    "purple": (150, 0, 150),
    "orange": (250, 140, 0),
}


def pair_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        colour, other = COLOURS[i % 6], COLOURS[(i + 1) % 6]
        long_tail = (
            " It sits, quietly and alone, in the middle of a wide and otherwise empty picture."
            if i % 3
            else ""
        )
        rows.append(
            {
                "id": f"p{i:03d}",
                "split": "validation" if i % 5 == 4 else "train",
                "image": image_bytes(RGB[colour]),
                "question": "What colour is it?",
                "chosen": f"The square is {colour}.{long_tail}",
                "rejected": f"The square is {other}. There is a dog.",
                "source": "test",
                "hardness": "easy" if i % 2 else "hard",
            }
        )
    return rows


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """20 pairs in shards of 7 rows, with an extra ``hardness`` column that scoring must carry."""
    return make_small_dataset(tmp_path)


def make_small_dataset(tmp_path: Path) -> Path:
    schema = BASE_SCHEMA.append(pa.field("hardness", pa.string()))
    writer = DatasetWriter(tmp_path / "data", schema=schema, shard_rows=7)
    for row in pair_rows(20):
        writer.write(row)
    writer.close()
    return tmp_path / "data"
