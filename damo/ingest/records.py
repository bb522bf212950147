"""What readers produce and why a row can be refused.

A reader turns one input row into a :class:`RawRecord` without judging it (except for problems only
the reader can see, such as a JSON line that does not parse); :mod:`damo.ingest.validate` judges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from damo.errors import DamoError


class IngestError(DamoError, RuntimeError):
    """The source as a whole cannot be ingested; the message names the source or file."""


# Quarantine reasons: every refused row carries exactly one of these (plus a free-text detail).
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
MALFORMED_ROW = "malformed_row"
EMPTY_TEXT = "empty_text"
IDENTICAL_RESPONSES = "identical_responses"
NON_UTF8_TEXT = "non_utf8_text"
IMAGE_MISSING = "image_missing"
IMAGE_UNDECODABLE = "image_undecodable"
IMAGE_TRUNCATED = "image_truncated"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_PATH_ESCAPES = "image_path_escapes"
IMAGE_NOT_REGULAR = "image_not_a_regular_file"  # a FIFO, device or socket: never opened
DUPLICATE = "duplicate"

REASONS = (
    MISSING_FIELD,
    WRONG_TYPE,
    MALFORMED_ROW,
    EMPTY_TEXT,
    IDENTICAL_RESPONSES,
    NON_UTF8_TEXT,
    IMAGE_MISSING,
    IMAGE_UNDECODABLE,
    IMAGE_TRUNCATED,
    IMAGE_TOO_LARGE,
    IMAGE_PATH_ESCAPES,
    IMAGE_NOT_REGULAR,
    DUPLICATE,
)

TEXT_FIELDS = ("question", "chosen", "rejected")


@dataclass
class Problem:
    reason: str
    detail: str


@dataclass
class RawRecord:
    """One input row as read: values are not yet checked (they may be None, bytes, numbers...).

    ``ref`` says where the row came from (``file#row``); ``image`` holds the image bytes when the
    reader could get them; ``image_ref`` names the image file when the row pointed at one;
    ``origin`` keeps the row's other (JSON-serialisable) fields for provenance; ``source_split`` is
    the split the source itself put the row in (an HF DatasetDict's), if any.
    """

    ref: str
    question: Any = None
    chosen: Any = None
    rejected: Any = None
    image: bytes | None = None
    image_ref: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None
    source_split: str | None = None
