"""Small raw-data fixtures for ingest tests: images made with Pillow, one row per kind of fault."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(colour: tuple[int, int, int] = (10, 200, 30), size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def png_bomb(width: int = 4000, height: int = 4000) -> bytes:
    """A valid PNG header claiming width×height pixels, with a tiny body: size is read, never decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def good_row(i: int) -> dict[str, Any]:
    return {
        "question": f"What is shown in picture {i}?",
        "chosen": f"A red square number {i}.",
        "rejected": f"A blue circle number {i}.",
        "idx": i,
    }


# reason → how many rows of the mixed fixture must be quarantined with it
MIXED_EXPECTED = {
    "missing_field": 2,
    "wrong_type": 1,
    "malformed_row": 2,
    "empty_text": 1,
    "identical_responses": 1,
    "non_utf8_text": 2,
    "image_missing": 1,
    "image_undecodable": 1,
    "image_truncated": 1,
    "image_too_large": 1,
    "image_path_escapes": 2,
    "duplicate": 1,
}
MIXED_GOOD = 6


@pytest.fixture
def mixed_jsonl(tmp_path: Path) -> Path:
    """A DAMA-format JSONL + image folder mixing good rows with every kind of fault (MIXED_EXPECTED)."""
    return make_mixed_jsonl(tmp_path)


def make_mixed_jsonl(tmp_path: Path) -> Path:
    """``tmp_path/raw/pairs.jsonl`` + ``tmp_path/raw/images/`` (read with ingest.image_folder=images)."""
    root = tmp_path / "raw"
    images = root / "images"
    images.mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(png())  # outside the image folder
    for i in range(MIXED_GOOD):
        (images / f"{i}.png").write_bytes(png((i * 40, 10, 10)))
    (images / "garbage.png").write_bytes(b"this is not an image")
    (images / "truncated.jpg").write_bytes(jpeg(size=(64, 64))[:300])
    (images / "bomb.png").write_bytes(png_bomb())
    lines: list[bytes] = [
        json.dumps({**good_row(i), "image_path": f"{i}.png"}).encode() for i in range(MIXED_GOOD)
    ]
    bad: list[dict[str, Any]] = [
        {"chosen": "x", "rejected": "y", "image_path": "0.png"},  # missing question
        {"question": "q", "chosen": "x", "rejected": "y"},  # missing image
        {"question": 5, "chosen": "x", "rejected": "y", "image_path": "0.png"},  # wrong type
        {"question": "q", "chosen": "   ", "rejected": "y", "image_path": "0.png"},  # empty
        {"question": "q", "chosen": "same", "rejected": "same ", "image_path": "0.png"},  # identical
        {"question": "q\ud800", "chosen": "x", "rejected": "y", "image_path": "0.png"},  # lone surrogate
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": "nope.png"},  # file missing
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": "garbage.png"},
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": "truncated.jpg"},
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": "bomb.png"},
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": "../secret.png"},
        {"question": "q", "chosen": "x", "rejected": "y", "image_path": str(tmp_path / "secret.png")},
        {**good_row(0), "image_path": "0.png"},  # duplicate of row 0
    ]
    lines += [json.dumps(row).encode() for row in bad]
    lines.append(b'{"question": "bad \xff\xfe bytes", "chosen": "x", "rejected": "y", "image_path": "1.png"}')
    lines.append(b"{not json")
    lines.append(b"[1, 2]")
    lines.append(b"")  # a blank line is not a row
    (root / "pairs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root / "pairs.jsonl"


def rlaif_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Rows shaped like the published RLAIF-V parquet (image as an HF Image struct)."""
    return [
        {
            "ds_name": "RLAIF-V",
            "image": {"bytes": png((i % 255, 5, 5)), "path": f"{i}.png"},
            **good_row(i),
            "origin_dataset": "synthetic",
            "origin_split": "train",
            "image_path": f"{i}.png",
        }
        for i in range(start, start + n)
    ]


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path
