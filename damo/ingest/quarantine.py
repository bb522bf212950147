"""``quarantine.parquet``: every refused input row, with its reason, streamed in batches.

Image bytes are not copied (a refused image may be a decompression bomb); ``image_ref`` names the
file when the row pointed at one, ``ref`` names the input file and row.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from damo.ingest.records import Problem, RawRecord

QUARANTINE = "quarantine.parquet"
SCHEMA = pa.schema(
    [
        ("ref", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("image_ref", pa.string()),
        ("origin", pa.string()),
    ]
)


def _shown(value: Any) -> str | None:
    """A text as stored in the quarantine: valid UTF-8 always (undecodable bytes escaped)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return value.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return repr(value)


class QuarantineWriter:
    def __init__(self, folder: Path, batch_rows: int):
        self.path = folder / QUARANTINE
        self.batch_rows = batch_rows
        self.counts: Counter[str] = Counter()
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")

    def add(self, record: RawRecord, problem: Problem) -> None:
        self.counts[problem.reason] += 1
        self._rows.append(
            {
                "ref": record.ref,
                "reason": problem.reason,
                "detail": problem.detail,
                "question": _shown(record.question),
                "chosen": _shown(record.chosen),
                "rejected": _shown(record.rejected),
                "image_ref": _shown(record.image_ref),
                "origin": json.dumps(record.origin, default=str, ensure_ascii=True),
            }
        )
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=SCHEMA))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()

    @property
    def total(self) -> int:
        return sum(self.counts.values())
