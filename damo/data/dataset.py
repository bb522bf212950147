"""The preference dataset: Parquet shards plus ``manifest.json`` (DESIGN.md, "data contract").

One row = ``id, split, image (bytes), question, chosen, rejected, source`` plus the columns later
steps add (``delta``, ``reference_chosen_logps``, ...). The manifest holds the schema version, row
counts per split, a sha256 per shard, dataset statistics (``delta_mean`` ...) with their provenance,
and any step reports.

Writing streams: :class:`DatasetWriter` buffers at most ``shard_rows`` rows, so memory stays bounded
whatever the input size. Readers iterate record batches shard by shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from damo.errors import DamoError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

BASE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("image", pa.binary()),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("source", pa.string()),
    ]
)
BASE_COLUMNS = tuple(BASE_SCHEMA.names)


class DatasetError(DamoError, ValueError):
    """A preference dataset folder is missing, corrupt or does not match the contract."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Manifest:
    num_rows: int
    splits: dict[str, int]
    shards: list[dict[str, Any]]
    columns: list[str]
    statistics: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def checksum(self) -> str:
        """One sha256 over the shard checksums: identifies the dataset's content."""
        h = hashlib.sha256()
        for shard in self.shards:
            h.update(shard["sha256"].encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "num_rows": self.num_rows,
            "splits": self.splits,
            "columns": self.columns,
            "shards": self.shards,
            "checksum": self.checksum,
            "statistics": self.statistics,
            "reports": self.reports,
        }

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{folder} is not a preference dataset: {MANIFEST} is missing")
        data = json.loads(path.read_text())
        if data.get("schema_version") != SCHEMA_VERSION:
            raise DatasetError(
                f"{path}: schema_version {data.get('schema_version')!r}, this damo reads {SCHEMA_VERSION}"
            )
        return cls(
            num_rows=data["num_rows"], splits=data["splits"], shards=data["shards"],
            columns=data["columns"], statistics=data.get("statistics", {}),
            reports=data.get("reports", {}),
        )

    def save(self, folder: Path) -> None:
        # Write-then-rename: a crash never leaves a half-written manifest beside complete shards.
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False))
        os.replace(tmp, folder / MANIFEST)


class DatasetWriter:
    """Streams rows into ``shard-00000.parquet``, ... and writes the manifest on :meth:`close`.

    ``schema`` defaults to the base schema; steps that add columns pass the extended schema.
    """

    def __init__(self, folder: str | Path, schema: pa.Schema = BASE_SCHEMA, shard_rows: int = 2048):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / MANIFEST).exists():
            raise DatasetError(f"{self.folder} already holds a dataset; write to an empty folder")
        self.schema = schema
        self.shard_rows = shard_rows
        self._buffer: list[dict[str, Any]] = []
        self._shards: list[dict[str, Any]] = []
        self._splits: dict[str, int] = {}
        self.statistics: dict[str, Any] = {}
        self.reports: dict[str, Any] = {}

    def write(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.shard_rows:
            self._flush()

    def write_table(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self.write(row)

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        name = f"shard-{len(self._shards):05d}.parquet"
        path = self.folder / name
        pq.write_table(table, path, compression="zstd")
        for split in table.column("split").to_pylist():
            self._splits[split] = self._splits.get(split, 0) + 1
        self._shards.append({"path": name, "rows": table.num_rows, "sha256": sha256_file(path)})
        self._buffer = []

    def close(self) -> Manifest:
        self._flush()
        manifest = Manifest(
            num_rows=sum(s["rows"] for s in self._shards), splits=self._splits, shards=self._shards,
            columns=list(self.schema.names), statistics=self.statistics, reports=self.reports,
        )
        manifest.save(self.folder)
        return manifest


class PreferenceDataset:
    """A preference dataset folder, read lazily shard by shard."""

    def __init__(self, folder: str | Path, verify: bool = False):
        self.folder = Path(folder)
        self.manifest = Manifest.load(self.folder)
        for shard in self.manifest.shards:
            path = self.folder / shard["path"]
            if not path.is_file():
                raise DatasetError(f"{self.folder}: shard {shard['path']} listed in the manifest is missing")
            if verify and sha256_file(path) != shard["sha256"]:
                raise DatasetError(f"{path}: checksum does not match the manifest (corrupt or edited)")

    def __len__(self) -> int:
        return self.manifest.num_rows

    @property
    def columns(self) -> list[str]:
        return self.manifest.columns

    @property
    def schema(self) -> pa.Schema:
        return pq.read_schema(self.folder / self.manifest.shards[0]["path"])

    def require(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DatasetError(f"{self.folder} lacks column(s) {missing}; it has {self.columns}")

    def iter_batches(self, columns: Iterable[str] | None = None, batch_size: int = 256,
                     split: str | None = None) -> Iterator[pa.RecordBatch]:
        cols = list(columns) if columns is not None else None
        if cols is not None and split is not None and "split" not in cols:
            cols.append("split")
        for shard in self.manifest.shards:
            pf = pq.ParquetFile(self.folder / shard["path"])
            for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
                if split is not None:
                    mask = pc.equal(batch.column("split"), split)
                    batch = batch.filter(mask)
                    if batch.num_rows == 0:
                        continue
                yield batch

    def iter_rows(self, columns: Iterable[str] | None = None, split: str | None = None
                  ) -> Iterator[dict[str, Any]]:
        for batch in self.iter_batches(columns, split=split):
            yield from batch.to_pylist()

    def read(self, columns: Iterable[str] | None = None, split: str | None = None) -> pa.Table:
        batches = list(self.iter_batches(columns, split=split))
        if not batches:
            return self.schema.empty_table()
        return pa.Table.from_batches(batches)


def extended_schema(base: pa.Schema, new_fields: list[pa.Field]) -> pa.Schema:
    """``base`` with ``new_fields`` appended (replacing same-named ones: re-running a step is allowed)."""
    names = {f.name for f in new_fields}
    kept = [f for f in base if f.name not in names]
    return pa.schema(kept + list(new_fields), metadata=base.metadata)


def map_dataset(src: PreferenceDataset, out: str | Path, new_fields: list[pa.Field],
                fn: Any, batch_size: int = 256) -> DatasetWriter:
    """Copy ``src`` into ``out`` adding ``new_fields`` computed by ``fn(batch) -> dict[col, list]``.

    Row order, ids and shard layout are kept. The caller sets ``writer.statistics`` and calls
    ``writer.close()``; statistics and reports of ``src`` are carried over.
    """
    schema = extended_schema(src.schema, new_fields)
    writer = DatasetWriter(out, schema=schema, shard_rows=max(s["rows"] for s in src.manifest.shards))
    writer.statistics = dict(src.manifest.statistics)
    writer.reports = dict(src.manifest.reports)
    for batch in src.iter_batches(batch_size=batch_size):
        added = fn(batch)
        rows = batch.to_pylist()
        for i, row in enumerate(rows):
            for f in new_fields:
                row[f.name] = added[f.name][i]
            writer.write(row)
    return writer
