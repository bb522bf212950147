"""The ingestion loop: source → reader → checks (threads) → dataset or quarantine.

Memory is bounded: one batch of ``ingest.read_batch_rows`` records in flight, one dataset shard
buffered by :class:`~damo.data.dataset.DatasetWriter`, and the set of pair ids seen (for
duplicates; 16 hex digits per row).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from damo.config import IngestConfig
from damo.contract import TRAIN_SPLIT, VALIDATION_SPLIT
from damo.data.dataset import BASE_SCHEMA, DatasetWriter
from damo.ingest.quarantine import QuarantineWriter
from damo.ingest.readers import READERS, detect_format
from damo.ingest.records import DUPLICATE, IngestError, Problem, RawRecord
from damo.ingest.source import open_source
from damo.ingest.validate import Checked, check_record

log = logging.getLogger(__name__)

# The dataset's columns: the contract's base columns + `origin`, the source row's other fields (JSON).
SCHEMA = BASE_SCHEMA.append(pa.field("origin", pa.string()))


def assign_split(pair_id: str, validation_fraction: float, seed: int) -> str:
    """ "validation" for a seeded-hash share of ids, else "train": depends on the id only, so a
    re-ordered or extended source keeps every pair's split."""
    if validation_fraction <= 0.0:
        return TRAIN_SPLIT
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    held_out = int.from_bytes(digest[:8], "big") / 2.0**64 < validation_fraction
    return VALIDATION_SPLIT if held_out else TRAIN_SPLIT


class _Counts:
    def __init__(self) -> None:
        self.input = 0
        self.kept = 0
        self.seen: dict[str, str] = {}  # pair id → ref of its first row


def _route(
    record: RawRecord,
    result: Checked | Problem,
    cfg: IngestConfig,
    counts: _Counts,
    writer: DatasetWriter,
    quarantine: QuarantineWriter,
) -> None:
    if isinstance(result, Problem):
        quarantine.add(record, result)
        return
    first = counts.seen.get(result.id)
    if cfg.dedupe and first is not None:
        quarantine.add(record, Problem(DUPLICATE, f"same image and texts as {first} (id {result.id})"))
        return
    counts.seen[result.id] = record.ref
    counts.kept += 1
    writer.write(
        {
            "id": result.id,
            "split": VALIDATION_SPLIT
            if record.source_split in cfg.validation_splits
            else assign_split(result.id, cfg.validation_fraction, cfg.split_seed),
            "image": result.image,
            "question": result.question,
            "chosen": result.chosen,
            "rejected": result.rejected,
            "source": record.ref,
            "origin": json.dumps(record.origin, default=str, ensure_ascii=False),
        }
    )


def ingest(uri: str, out: Path, cfg: IngestConfig) -> dict[str, Any]:
    """Ingest ``uri`` into the dataset folder ``out`` (+ ``out/quarantine.parquet``); the report.

    Raises IngestError when the source is missing, unreadable, or yields no usable pair.
    """
    start = time.perf_counter()
    source = open_source(uri)
    fmt = detect_format(source) if cfg.format == "auto" else cfg.format
    if cfg.validation_splits and fmt != "hf_datasets":
        raise IngestError(
            f"ingest.validation_splits={cfg.validation_splits} names splits of an HF DatasetDict, "
            f"but source {uri} is read as {fmt}"
        )
    log.info("ingesting %s as %s (%d files)", uri, fmt, len(source.files()))
    out.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(out, schema=SCHEMA, shard_rows=cfg.shard_rows)
    quarantine = QuarantineWriter(out, cfg.read_batch_rows)
    counts = _Counts()
    bar = tqdm(desc="ingest", unit="rows", disable=not sys.stderr.isatty())
    try:
        with ThreadPoolExecutor(cfg.workers) as pool:
            for batch in READERS[fmt](source, cfg):
                results = pool.map(lambda r: check_record(r, cfg.max_image_pixels, cfg.id_length), batch)
                for record, result in zip(batch, results, strict=True):
                    _route(record, result, cfg, counts, writer, quarantine)
                counts.input += len(batch)
                bar.update(len(batch))
    finally:
        bar.close()
        quarantine.close()
    return _finish(uri, fmt, out, cfg, counts, writer, quarantine, time.perf_counter() - start)


def _finish(
    uri: str,
    fmt: str,
    out: Path,
    cfg: IngestConfig,
    counts: _Counts,
    writer: DatasetWriter,
    quarantine: QuarantineWriter,
    seconds: float,
) -> dict[str, Any]:
    if counts.input != counts.kept + quarantine.total:  # the no-silent-loss invariant
        raise IngestError(
            f"internal error: {counts.input} rows read but {counts.kept} kept + "
            f"{quarantine.total} quarantined"
        )
    by_reason = dict(sorted(quarantine.counts.items()))
    if counts.kept == 0:
        raise IngestError(
            f"source {uri}: no usable pair among {counts.input} rows "
            f"(quarantined by reason: {by_reason}); see {quarantine.path}"
        )
    report = {
        "source": uri,
        "format": fmt,
        "input_rows": counts.input,
        "kept": counts.kept,
        "quarantined": quarantine.total,
        "quarantined_by_reason": by_reason,
        "validation_fraction": cfg.validation_fraction,
        "split_seed": cfg.split_seed,
        "validation_splits": cfg.validation_splits,
        "seconds": round(seconds, 3),
        "rows_per_s": round(counts.input / seconds, 1) if seconds else 0.0,
    }
    writer.reports["ingest"] = report
    manifest = writer.close()
    report["splits"] = manifest.splits
    report["checksum"] = manifest.checksum
    return report
