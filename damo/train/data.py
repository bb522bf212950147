"""The training rows and a deterministic schedule: which pairs each rank sees at each micro-step.

The schedule is a pure function of (seed, step): epoch ``e`` uses permutation ``randperm(n, seed + e)``
(or file order), optimizer step ``s`` takes the next ``global_batch_size`` pairs of it, split into
``gradient_accumulation`` micro-steps of ``micro_batch_size × world_size`` pairs, and rank ``r`` takes
its ``micro_batch_size`` slice. So a resumed run needs only the step number to continue exactly where
the killed one stopped, and every rank knows the whole micro-batch (its reference log-probs and δ)
without a gather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from damo.config import TrainConfig
from damo.contract import DELTA_COLUMN, PAIR_COLUMNS, REFERENCE_COLUMNS, REJECTED_TOKENS_REPORT, TRAIN_SPLIT
from damo.data.dataset import PreferenceDataset
from damo.errors import DamoError


class TrainDataError(DamoError, ValueError):
    """The dataset cannot feed this training config (missing columns, too few rows)."""


@dataclass(frozen=True)
class Schedule:
    num_rows: int
    global_batch_size: int
    micro_batch_size: int
    world_size: int
    total_steps: int
    shuffle: bool
    seed: int

    @property
    def gradient_accumulation(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        return self.num_rows // self.global_batch_size

    def step_indices(self, step: int) -> torch.Tensor:
        """Row indices (global_batch_size,) of optimizer step ``step`` (0-based)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        if self.shuffle:
            order = torch.randperm(self.num_rows, generator=torch.Generator().manual_seed(self.seed + epoch))
        else:
            order = torch.arange(self.num_rows)
        return order[within * self.global_batch_size: (within + 1) * self.global_batch_size]

    def micro_indices(self, step: int, micro: int) -> torch.Tensor:
        """Row indices (micro_batch_size × world_size,) of micro-step ``micro``, rank-major."""
        size = self.micro_batch_size * self.world_size
        return self.step_indices(step)[micro * size: (micro + 1) * size]

    def rank_slice(self, rank: int) -> slice:
        return slice(rank * self.micro_batch_size, (rank + 1) * self.micro_batch_size)


def make_schedule(config: TrainConfig, num_rows: int, world_size: int, seed: int) -> Schedule:
    if num_rows < config.global_batch_size:
        raise TrainDataError(
            f"{num_rows} training pairs < train.global_batch_size {config.global_batch_size}")
    steps_per_epoch = num_rows // config.global_batch_size
    total = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    return Schedule(num_rows=num_rows, global_batch_size=config.global_batch_size,
                    micro_batch_size=config.micro_batch_size, world_size=world_size,
                    total_steps=max(total, 1), shuffle=config.shuffle, seed=seed)


class TrainRows:
    """The train split held in memory as columns (images as encoded bytes)."""

    def __init__(self, dataset: PreferenceDataset, *, need_reference: bool, need_delta: bool,
                 rejected_tokens: str = "all"):
        columns = list(PAIR_COLUMNS)
        if need_reference:
            missing = [c for c in REFERENCE_COLUMNS if c not in dataset.columns]
            if missing:
                raise TrainDataError(
                    f"{dataset.folder} lacks {missing}: run `damo reference` first, or set "
                    "train.reference=on_the_fly")
            stored = reference_rejected_tokens(dataset)
            if stored != rejected_tokens:
                # The margin would compare a policy sum and a reference sum over different tokens.
                raise TrainDataError(
                    f"{dataset.folder}: its reference log-probs sum rejected answers over {stored!r} tokens, "
                    f"but train.loss.rejected_tokens is {rejected_tokens!r}; rerun `damo reference` with "
                    f"train.loss.rejected_tokens={rejected_tokens}")
            columns += REFERENCE_COLUMNS
        if need_delta:
            if DELTA_COLUMN not in dataset.columns:
                raise TrainDataError(f"{dataset.folder} lacks column 'delta' that this loss arm needs: "
                                     "run `damo score` first, or use arm dpo/model")
            columns.append(DELTA_COLUMN)
        self.table = dataset.read(columns, split=TRAIN_SPLIT)
        if self.table.num_rows == 0:
            raise TrainDataError(f"{dataset.folder} has no rows with split={TRAIN_SPLIT!r}")
        self.columns = columns

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def rows(self, indices: torch.Tensor) -> list[dict[str, Any]]:
        return self.table.take(indices.tolist()).to_pylist()

    def column(self, name: str, indices: torch.Tensor) -> torch.Tensor:
        """(len(indices),) float64 values of a numeric column."""
        values = self.table.column(name).take(indices.tolist()).to_pylist()
        return torch.tensor(values, dtype=torch.float64)


def reference_rejected_tokens(dataset: PreferenceDataset) -> str:
    """Which rejected tokens the dataset's reference columns sum (``train.loss.rejected_tokens``)."""
    report = dataset.manifest.reports.get("reference")
    return str(report.get(REJECTED_TOKENS_REPORT, "all")) if isinstance(report, dict) else "all"


def resolve_delta_mean(config: TrainConfig, dataset: PreferenceDataset) -> tuple[float, str]:
    """δ̄ and where it came from: pinned in ``train.loss.delta_mean`` or the manifest's statistic."""
    if config.loss.delta_mean is not None:
        return config.loss.delta_mean, "config train.loss.delta_mean"
    stat = dataset.manifest.statistics.get("delta_mean")
    if not isinstance(stat, dict) or "value" not in stat:
        raise TrainDataError(f"{dataset.folder}/manifest.json has no statistics.delta_mean; run `damo score` "
                             "or pin train.loss.delta_mean")
    return float(stat["value"]), f"{dataset.folder}/manifest.json statistics.delta_mean"
