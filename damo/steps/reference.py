"""Step ``reference``: add the reference (SFT) model's summed log-probs as dataset columns.

Computed once, so that training holds no reference model (the authors' practice). Rows, ids, shard
layout and every other column are carried through untouched (:func:`damo.data.dataset.map_dataset`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from damo import device
from damo.config import DamoConfig
from damo.contract import PAIR_COLUMNS, REFERENCE_COLUMNS, REJECTED_TOKENS_REPORT
from damo.data.dataset import Manifest, PreferenceDataset, map_dataset
from damo.models import load_model, load_processor, model_provenance, resolve_model
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker
from damo.train.batch import collate_pairs
from damo.train.logps import PairLogps

log = logging.getLogger(__name__)

COLUMNS = REFERENCE_COLUMNS


@dataclass(frozen=True)
class ReferencePaths:
    data: Path
    model: str
    out: Path


def reference_logps_fn(scorer: PairLogps, processor: Any, dev: torch.device,
                       rejected_tokens: str = "all") -> Any:
    """``fn(record_batch) -> {column: list[float]}`` for :func:`map_dataset`; ``rejected_tokens`` as
    ``train.loss.rejected_tokens`` (the reference must sum the same tokens as the policy)."""

    @torch.inference_mode()
    def fn(batch: pa.RecordBatch) -> dict[str, list[float]]:
        rows = batch.select(list(PAIR_COLUMNS)).to_pylist()
        pairs = collate_pairs(processor, rows, rejected_tokens).to(dev)
        chosen, rejected = scorer(pairs)
        return {COLUMNS[0]: chosen.double().cpu().tolist(), COLUMNS[1]: rejected.double().cpu().tolist()}

    return fn


@dataclass(frozen=True, eq=False)
class ReferenceResult(StepResult):
    rows: int = 0
    model: str = ""


def run(config: DamoConfig, paths: ReferencePaths) -> ReferenceResult:
    """Write ``paths.data`` + reference log-prob columns into ``paths.out``; return a summary."""

    def work(tracker: Tracker) -> ReferenceResult:
        started = time.perf_counter()
        manifest, provenance = _add_columns(config, paths)
        seconds = time.perf_counter() - started
        pairs_per_s = manifest.num_rows / max(seconds, 1e-9)
        tracker.log_metrics({"reference.seconds": seconds, "reference.pairs_per_s": pairs_per_s})
        log.info("reference log-probs for %d rows in %.1f s → %s", manifest.num_rows, seconds, paths.out)
        return ReferenceResult(step="reference", out=str(paths.out), rows=manifest.num_rows,
                               model=str(paths.model),
                               stats={"columns": list(COLUMNS), "seconds": round(seconds, 3),
                                      **{k: v for k, v in provenance.items() if k != "model"},
                                      "pairs_per_s": round(pairs_per_s, 3)})

    return run_step(config, "reference", Path(paths.out), work, params={"reference.model": str(paths.model)})


def _add_columns(config: DamoConfig, paths: ReferencePaths) -> tuple[Manifest, dict[str, str]]:
    source = PreferenceDataset(paths.data)
    source.require(*PAIR_COLUMNS)
    model_dir = resolve_model(paths.model, config)
    provenance = model_provenance(paths.model, model_dir)  # + the Hub commit for a Hub id
    dev = device.choose_device()
    model = load_model(model_dir, config.reference.precision).to(dev).eval()
    scorer = PairLogps(model, chunk_tokens=config.reference.logps_chunk_tokens)
    processor = load_processor(model_dir)
    fields = [pa.field(name, pa.float64()) for name in COLUMNS]
    rejected_tokens = config.train.loss.rejected_tokens
    fn = reference_logps_fn(scorer, processor, dev, rejected_tokens)
    writer = map_dataset(source, paths.out, fields, fn, batch_size=config.reference.batch_size)
    writer.reports["reference"] = {
        **provenance, "precision": str(device.choose_dtype(config.reference.precision)),
        "source_checksum": source.manifest.checksum,
        # Training refuses columns summed over other tokens than its own (damo.train.data).
        REJECTED_TOKENS_REPORT: rejected_tokens,
    }
    return writer.close(), provenance
