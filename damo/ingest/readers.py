"""Readers, one per source format, chosen from a table: format name → function.

Each reader yields lists of :class:`RawRecord` (at most ``read_batch_rows`` each) and never holds
more than one batch of rows, so memory stays bounded by the batch size, not the source size:
Parquet is read by record batches, HF ``datasets`` Arrow files are memory-mapped, JSONL by lines and
a JSON list item by item (:mod:`damo.ingest.jsonstream`).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from damo.config import IngestConfig
from damo.ingest.jsonstream import is_json_list, iter_json_list, iter_jsonl
from damo.ingest.quarantine import QUARANTINE
from damo.ingest.records import (
    IMAGE_MISSING,
    IMAGE_NOT_REGULAR,
    IMAGE_PATH_ESCAPES,
    MALFORMED_ROW,
    IngestError,
    Problem,
    RawRecord,
)
from damo.ingest.source import Source, inside, join, parent

Reader = Callable[[Source, IngestConfig], Iterator[list[RawRecord]]]

_MAIN_FIELDS = ("question", "chosen", "rejected", "image", "image_path")
HF_METADATA = ("dataset_info.json", "state.json", "dataset_dict.json")


def _origin(row: dict[str, Any]) -> dict[str, Any]:
    """The row's other scalar fields (ds_name, origin_dataset, idx, ...), kept for provenance."""
    return {
        k: v
        for k, v in row.items()
        if k not in _MAIN_FIELDS and isinstance(v, str | int | float | bool | type(None))
    }


class ImageFolder:
    """Resolves image paths of a row inside one folder (local or ``s3://``), refusing escapes."""

    def __init__(self, source: Source, folder: str | None):
        self.source = source
        self.folder = folder

    def fetch(self, record: RawRecord, rel: Any) -> None:
        """Fill ``record.image`` from ``folder/rel``, or set ``record.problem``."""
        record.image_ref = str(rel)
        if self.folder is None:
            record.problem = Problem(
                IMAGE_MISSING, f"image {rel!r} given as a path and no ingest.image_folder"
            )
            return
        target = inside(self.folder, str(rel)) if isinstance(rel, str) else None
        if target is None:
            record.problem = Problem(IMAGE_PATH_ESCAPES, f"image path {rel!r} is not inside {self.folder}")
            return
        try:
            record.image = self.source.read_bytes(target)
        except (FileNotFoundError, IsADirectoryError):
            record.problem = Problem(IMAGE_MISSING, f"image file {target} does not exist")
        except IngestError as err:  # a FIFO or device named like an image: refused unopened
            record.problem = Problem(IMAGE_NOT_REGULAR, str(err))


def _image_folder(source: Source, cfg: IngestConfig, near: str) -> str | None:
    """ingest.image_folder resolved: absolute or s3:// as is, relative to ``near``'s folder."""
    folder = cfg.image_folder
    if folder is None:
        return parent(near)
    if folder.startswith(("s3://", "/")):
        return folder
    return join(parent(near), folder)


def record_from_row(ref: str, row: dict[str, Any], images: ImageFolder) -> RawRecord:
    """A table row (RLAIF-V, HF datasets, DAMA JSON) → RawRecord; images inline or by path."""
    record = RawRecord(
        ref=ref,
        question=row.get("question"),
        chosen=row.get("chosen"),
        rejected=row.get("rejected"),
        origin=_origin(row),
    )
    image = row.get("image")
    path = row.get("image_path")
    if isinstance(image, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        path = path or image.get("path")
        image = image.get("bytes")
    if isinstance(image, bytes) and image:
        record.image = image
        record.image_ref = path if isinstance(path, str) else None
    elif isinstance(image, str) and image:
        images.fetch(record, image)  # LLaVA-style rows: "image": "<relative path>"
    elif path:
        images.fetch(record, path)
    return record


def _batched(records: Iterator[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    batch: list[RawRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _files(source: Source, *suffixes: str) -> list[str]:
    found = [f for f in source.files() if f.endswith(suffixes)]
    if not found:
        raise IngestError(f"source {source.uri} holds no {'/'.join(suffixes)} file")
    return found


# ------------------------------------------------------------------------ RLAIF-V parquet
def read_parquet(source: Source, cfg: IngestConfig) -> Iterator[list[RawRecord]]:
    """RLAIF-V as published: Parquet shards whose rows carry image bytes, question, chosen, ..."""
    for file in _files(source, ".parquet"):
        if posixpath.basename(file) == QUARANTINE:
            continue  # an ingested folder as a source: its refused rows are not input rows
        name = source.relative(file)
        images = ImageFolder(source, _image_folder(source, cfg, file) if cfg.image_folder else None)
        with source.local(file) as path:
            try:
                batches = pq.ParquetFile(path).iter_batches(batch_size=cfg.read_batch_rows)
                offset = 0
                for batch in batches:
                    rows = batch.to_pylist()
                    yield [record_from_row(f"{name}#{offset + i}", r, images) for i, r in enumerate(rows)]
                    offset += len(rows)
            except (pa.ArrowException, OSError) as err:
                raise IngestError(f"{file}: not a readable Parquet file ({err})") from err


# ------------------------------------------------------------------------ HF datasets folder
def _arrow_batches(path: Any) -> Iterator[pa.RecordBatch]:
    source = pa.memory_map(str(path))
    try:
        reader: Any = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
        yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
        return
    yield from reader


def _hf_splits(source: Source, cfg: IngestConfig) -> list[str]:
    """The split names of a DatasetDict source (its ``dataset_dict.json``); [] for a single Dataset.
    IngestError when ``ingest.validation_splits`` names a split the source does not have."""
    metas = [f for f in source.files() if posixpath.basename(f) == "dataset_dict.json"]
    meta = min(metas, key=len, default=None)
    splits: list[str] = []
    if meta is not None:  # the top-level one: a DatasetDict
        try:
            splits = list(json.loads(source.read_bytes(meta))["splits"])
        except (ValueError, KeyError, TypeError) as err:
            raise IngestError(f"{meta}: not a readable dataset_dict.json ({err})") from err
    unknown = sorted(set(cfg.validation_splits) - set(splits))
    if unknown:
        raise IngestError(
            f"ingest.validation_splits names {unknown}, not splits of source {source.uri} "
            f"(its splits: {splits or 'none: a single Dataset'})"
        )
    return splits


def _arrow_records(path: Any, name: str, images: ImageFolder, batch_rows: int) -> Iterator[list[RawRecord]]:
    offset = 0
    for batch in _arrow_batches(path):
        for start in range(0, batch.num_rows, batch_rows):
            rows = batch.slice(start, batch_rows).to_pylist()
            yield [record_from_row(f"{name}#{offset + i}", r, images) for i, r in enumerate(rows)]
            offset += len(rows)


def read_hf_datasets(source: Source, cfg: IngestConfig) -> Iterator[list[RawRecord]]:
    """A folder written by ``datasets.Dataset.save_to_disk`` (or a DatasetDict): its Arrow files.
    A DatasetDict's split name (its sub-folder) is kept as ``origin.hf_split``."""
    splits = _hf_splits(source, cfg)
    for file in _files(source, ".arrow"):
        name = source.relative(file)
        top = name.split("/", 1)[0] if "/" in name else None
        split = top if top in splits else None
        images = ImageFolder(source, _image_folder(source, cfg, file) if cfg.image_folder else None)
        with source.local(file) as path:
            try:
                for records in _arrow_records(path, name, images, cfg.read_batch_rows):
                    for record in records if split else ():
                        record.source_split = split
                        record.origin["hf_split"] = split
                    yield records
            except (pa.ArrowException, OSError) as err:
                raise IngestError(f"{file}: not a readable Arrow file ({err})") from err


# ------------------------------------------------------------------------ DAMA JSON / JSONL
def _json_rows(name: str, stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """(ref, parsed row or Problem) per row of a JSON list or JSONL stream, one row at a time."""
    if is_json_list(stream):
        yield from ((f"{name}#{i}", row) for i, row in enumerate(iter_json_list(stream, name)))
    else:
        yield from ((f"{name}#{i}", row) for i, row in iter_jsonl(stream))


def _dama_records(source: Source, cfg: IngestConfig) -> Iterator[RawRecord]:
    files = [f for f in _files(source, ".json", ".jsonl") if posixpath.basename(f) not in HF_METADATA]
    for file in files:
        name = source.relative(file)
        images = ImageFolder(source, _image_folder(source, cfg, file))
        with source.local(file) as path, open(path, "rb") as stream:
            for ref, row in _json_rows(name, stream):
                if isinstance(row, Problem):
                    yield RawRecord(ref=ref, problem=row)
                elif not isinstance(row, dict):
                    yield RawRecord(
                        ref=ref, problem=Problem(MALFORMED_ROW, f"a {type(row).__name__}, not an object")
                    )
                else:
                    yield record_from_row(ref, row, images)


def read_dama_json(source: Source, cfg: IngestConfig) -> Iterator[list[RawRecord]]:
    """The DAMA authors' format: a JSON list or JSONL of {question, chosen, rejected, image_path, idx,
    ...} plus an image folder (``ingest.image_folder``, default: the JSON's folder)."""
    yield from _batched(_dama_records(source, cfg), cfg.read_batch_rows)


READERS: dict[str, Reader] = {
    "rlaif_v": read_parquet,
    "dama_json": read_dama_json,
    "hf_datasets": read_hf_datasets,
}


def detect_format(source: Source) -> str:
    """The reader for the files found: HF metadata or .arrow → hf_datasets, .parquet → rlaif_v,
    .json/.jsonl → dama_json."""
    names = [posixpath.basename(f) for f in source.files()]
    if any(n in HF_METADATA or n.endswith(".arrow") for n in names):
        return "hf_datasets"
    if any(n.endswith(".parquet") for n in names):
        return "rlaif_v"
    if any(n.endswith((".json", ".jsonl")) for n in names):
        return "dama_json"
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    raise IngestError(
        f"cannot tell the format of source {source.uri} (files: {shown or 'none'}); "
        f"set ingest.format to one of {sorted(READERS)}"
    )
