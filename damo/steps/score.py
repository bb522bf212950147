"""Step ``score``: CLIP hardness (DAMA.md §1) added to a preference dataset.

Adds ``chosen_sub``, ``chosen_sub_scores``, ``rejected_sub``, ``rejected_sub_scores``, ``chosen_clip``,
``rejected_clip``, ``delta``; stores ``statistics.delta_mean`` (mean δ over the train rows) with its
provenance in the manifest; writes ``delta_histogram.png``; logs summary metrics.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from damo import __version__
from damo.config import DamoConfig
from damo.contract import TRAIN_SPLIT
from damo.data.dataset import BASE_COLUMNS, DatasetError, PreferenceDataset, map_dataset
from damo.device import has_cuda
from damo.hardness.clip import load_clip
from damo.hardness.inputs import ScoreInputs
from damo.hardness.report import histogram, summary
from damo.hardness.scorer import FIELDS, Scorer
from damo.hardness.splitter import make_splitter
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker

log = logging.getLogger(__name__)
HISTOGRAM = "delta_histogram.png"


@dataclass(frozen=True)
class ScorePaths:
    data: Path  # a preference dataset folder
    out: Path  # the scored dataset folder to create


def _score(config: DamoConfig, paths: ScorePaths) -> tuple[Scorer, dict[str, Any], float]:
    """Score every pair into ``paths.out``; returns the scorer (its δ), the statistics and δ̄."""
    cfg = config.score
    src = PreferenceDataset(paths.data)
    src.require(*BASE_COLUMNS)
    clip = load_clip(cfg, config.hub)
    splitter = make_splitter(cfg.splitter, clip.tokenizer)
    shards = [s["path"] for s in src.manifest.shards]
    inputs = ScoreInputs(src.folder, shards, cfg.batch_size, clip.preprocess, clip.tokenizer, splitter)
    loader = DataLoader(inputs, batch_size=None, num_workers=cfg.num_workers, pin_memory=has_cuda())
    with tqdm(total=len(src), desc="score", unit="pairs", disable=not sys.stderr.isatty()) as bar:
        scorer = Scorer(clip, cfg, iter(loader), on_batch=bar.update)
        start = time.perf_counter()
        writer = map_dataset(src, paths.out, FIELDS, scorer, batch_size=cfg.batch_size)
        seconds = time.perf_counter() - start
    delta = np.concatenate(scorer.deltas)
    train = np.asarray(scorer.splits) == TRAIN_SPLIT
    if not train.any():
        raise DatasetError(f"{paths.data} has no train rows: delta_mean is defined over the training split")
    delta_mean = float(delta[train].mean())
    provenance = {
        **clip.provenance,
        "score": cfg.score,
        "splitter": cfg.splitter,
        "split": TRAIN_SPLIT,
        "rows": int(train.sum()),
        "dataset": str(paths.data),
        "dataset_checksum": src.manifest.checksum,
        "damo_version": __version__,
    }
    writer.statistics["delta_mean"] = {"value": delta_mean, "provenance": provenance}
    stats = {
        "pairs": len(delta),
        "seconds": round(seconds, 3),
        "pairs_per_s": len(delta) / seconds if seconds else 0.0,
        "sub_sentences_per_pair": scorer.sub_sentences / len(delta),
        "images_encoded": scorer.image_cache.misses,
        "sub_sentences_encoded": scorer.text_cache.misses,
        **summary(delta),
    }
    writer.reports["score"] = stats
    writer.close()
    return scorer, stats, delta_mean


@dataclass(frozen=True, eq=False)
class ScoreResult(StepResult):
    delta_mean: float = 0.0
    histogram: str = ""


def run(config: DamoConfig, paths: ScorePaths) -> ScoreResult:
    """Score ``paths.data`` into ``paths.out``; returns the summary (delta_mean, δ statistics, speed)."""
    out = Path(paths.out)

    def work(tracker: Tracker) -> ScoreResult:
        scorer, stats, delta_mean = _score(config, ScorePaths(Path(paths.data), out))
        title = f"{config.score.clip_model} · {config.score.score} · {stats['pairs']} pairs"
        png = histogram(
            np.concatenate(scorer.deltas), delta_mean, out / HISTOGRAM, config.score.histogram_bins, title
        )
        tracker.log_metrics({"delta_mean": delta_mean, **{k: float(v) for k, v in stats.items()}})
        tracker.log_artifact(png)
        log.info(
            "scored %d pairs in %.1fs (%.1f pairs/s); delta_mean=%.4f",
            stats["pairs"],
            stats["seconds"],
            stats["pairs_per_s"],
            delta_mean,
        )
        return ScoreResult(step="score", out=str(out), delta_mean=delta_mean, histogram=str(png),
                           stats={"dtype": scorer.clip.provenance["dtype"], **stats})

    return run_step(config, "score", out, work)
