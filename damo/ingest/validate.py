"""Judging one raw record: the checks that send a row to the quarantine, and the pair id.

Run in a thread pool (Pillow decodes without holding the GIL). Duplicates are judged later, in
order, by the ingester: they need the ids of the rows before.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from damo.ingest.records import (
    EMPTY_TEXT,
    IDENTICAL_RESPONSES,
    IMAGE_TOO_LARGE,
    IMAGE_TRUNCATED,
    IMAGE_UNDECODABLE,
    MISSING_FIELD,
    NON_UTF8_TEXT,
    TEXT_FIELDS,
    WRONG_TYPE,
    Problem,
    RawRecord,
)

# What Pillow raises on broken files (it has no single base class for decoder failures).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError, TypeError)


@dataclass
class Checked:
    """A record that passed every per-row check: clean texts and the pair id."""

    id: str
    question: str
    chosen: str
    rejected: str
    image: bytes


def _text(name: str, value: object) -> tuple[str | None, Problem | None]:
    if value is None:
        return None, Problem(MISSING_FIELD, f"{name} is missing")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, Problem(NON_UTF8_TEXT, f"{name} is not UTF-8 ({err.reason} at byte {err.start})")
    if not isinstance(value, str):
        return None, Problem(WRONG_TYPE, f"{name} is a {type(value).__name__}, not text")
    try:
        value.encode("utf-8")  # lone surrogates: invalid bytes kept by surrogateescape, or \ud800 escapes
    except UnicodeEncodeError as err:
        return None, Problem(NON_UTF8_TEXT, f"{name} is not valid UTF-8 text ({err.reason} at {err.start})")
    if not value.strip():
        return None, Problem(EMPTY_TEXT, f"{name} is empty")
    return value, None


def check_image(data: bytes, max_pixels: int) -> Problem | None:
    """None when ``data`` decodes completely into an image of at most ``max_pixels`` pixels.

    The size is read from the header before any pixel is decoded, so a decompression bomb is refused
    without allocating it. A full decode then catches truncated files.
    """
    try:
        with warnings.catch_warnings():
            # We enforce our own limit below; Pillow's warning at its default limit is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return Problem(
                        IMAGE_TOO_LARGE, f"{width}x{height} pixels > ingest.max_image_pixels={max_pixels}"
                    )
                # JPEG: decode at 1/8 scale. Every byte of the stream is still decoded (truncation is
                # still caught) at half the cost; other formats ignore draft().
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except Image.DecompressionBombError as err:
        return Problem(IMAGE_TOO_LARGE, str(err))
    except UnidentifiedImageError as err:
        return Problem(IMAGE_UNDECODABLE, f"not an image Pillow can read ({err})")
    except _DECODE_ERRORS as err:
        reason = IMAGE_TRUNCATED if "truncated" in str(err).lower() else IMAGE_UNDECODABLE
        return Problem(reason, f"{type(err).__name__}: {err}")
    return None


def pair_id(image: bytes, question: str, chosen: str, rejected: str, length: int) -> str:
    """sha256 over the image bytes and the three texts (NUL-separated), truncated to ``length`` hex."""
    h = hashlib.sha256(image)
    for text in (question, chosen, rejected):
        h.update(b"\0")
        h.update(text.encode("utf-8"))
    return h.hexdigest()[:length]


def check_record(record: RawRecord, max_pixels: int, id_length: int) -> Checked | Problem:
    """The record's clean form, or the first problem found (reader problems first, then texts, image)."""
    if record.problem is not None:
        return record.problem
    texts: list[str] = []
    for name in TEXT_FIELDS:
        value, problem = _text(name, getattr(record, name))
        if problem is not None:
            return problem
        assert value is not None
        texts.append(value)
    question, chosen, rejected = texts
    if chosen.strip() == rejected.strip():
        return Problem(IDENTICAL_RESPONSES, "chosen and rejected are the same text")
    if not record.image:  # no image field at all (a path to a missing file is IMAGE_MISSING, by the reader)
        return Problem(MISSING_FIELD, "image is missing")
    problem = check_image(record.image, max_pixels)
    if problem is not None:
        return problem
    return Checked(
        pair_id(record.image, question, chosen, rejected, id_length), question, chosen, rejected, record.image
    )
