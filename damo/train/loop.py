"""The DAMA training loop on DeepSpeed, run by every rank (one process, or one per GPU/CPU worker).

Per micro-step (DAMA.md "Order within a step"): forward (the image encoded once per pair) → this
rank's policy log-probs → gather over ranks → keep-set, α_M (old R̄), β_i and the loss from
:class:`damo.loss.PreferenceLoss` on the global micro-batch, averaged over this rank's kept pairs →
backward, DeepSpeed step (an optimizer step at each accumulation boundary) → R̄ updated in the loss.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from damo import device
from damo.config import DamoConfig
from damo.contract import DELTA_COLUMN, REFERENCE_COLUMNS
from damo.data.dataset import PreferenceDataset
from damo.errors import DamoError
from damo.loss import (
    ARMS,
    DamaLossOutput,
    NonFiniteLossInput,
    PreferenceLoss,
    chosen_nll,
    data_factor_from_delta,
)
from damo.models import load_policy, load_processor, resolve_model
from damo.train import checkpoint, select
from damo.train.batch import PairBatch, collate_pairs
from damo.train.data import Schedule, TrainRows, make_schedule, resolve_delta_mean
from damo.train.engine import all_reduce_sum, build_engine, gather_vector, init_distributed, plan, with_local
from damo.train.local_engine import LocalEngine
from damo.train.logps import PairLogps
from damo.train.metrics import StepMetrics

log = logging.getLogger(__name__)


class TrainingError(DamoError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and last checkpoint."""


def arm_uses_data(arm: str) -> bool:
    """Whether the arm's α_D depends on δ (probed through the arm's own data function, not a list)."""
    probe = torch.tensor([2.0], dtype=torch.float64)
    return not torch.equal(ARMS[arm].data(probe), torch.ones_like(probe))


def keep_set_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """The same generator on every rank and after a resume: a function of (seed, step, micro) only."""
    state = int(np.random.SeedSequence([seed, step, micro]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)


@dataclass
class Trainer:
    config: DamoConfig
    engine: Any
    processor: Any
    rows: TrainRows
    schedule: Schedule
    rank: int
    world: int
    dev: torch.device
    delta_mean: tuple[float, str] | None
    reference: PairLogps | None  # on-the-fly reference (None: precomputed columns)
    loss: PreferenceLoss  # owns the running gap R̄ (checkpointed as "running_gap")
    model_dir: Path  # the local HF folder the policy was loaded from
    data_checksum: str  # the training dataset's manifest checksum (named in the model card)

    def _reference_context(self) -> AbstractContextManager[Any]:
        # With LoRA the reference is the policy with its adapters switched off: no second model.
        disable = getattr(self.engine.module.model, "disable_adapter", None)
        return disable() if self.reference is self.engine.module and disable else nullcontext()

    def _reference_logps(self, batch: PairBatch, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (N,) reference log-probs: stored columns, or computed here and gathered."""
        if self.reference is None:
            chosen_column, rejected_column = REFERENCE_COLUMNS
            return (self.rows.column(chosen_column, indices).to(self.dev),
                    self.rows.column(rejected_column, indices).to(self.dev))
        with torch.no_grad(), self._reference_context():
            chosen, rejected = self.reference(batch)
        return (torch.cat(gather_vector(chosen.double())), torch.cat(gather_vector(rejected.double())))

    def _data_factor(self, indices: torch.Tensor) -> torch.Tensor:
        if self.delta_mean is None:
            return torch.ones(len(indices), dtype=torch.float64, device=self.dev)
        delta = self.rows.column(DELTA_COLUMN, indices)
        return data_factor_from_delta(delta, self.delta_mean[0]).to(self.dev)

    def micro_step(self, step: int, micro: int, metrics: StepMetrics) -> None:
        indices = self.schedule.micro_indices(step, micro)
        mine = indices[self.schedule.rank_slice(self.rank)]
        batch = collate_pairs(self.processor, self.rows.rows(mine), self.config.train.loss.rejected_tokens)
        batch = batch.to(self.dev)
        chosen, rejected = self.engine(batch)
        chosen, rejected = chosen.double(), rejected.double()
        policy_chosen = with_local(gather_vector(chosen), chosen, self.rank)
        policy_rejected = with_local(gather_vector(rejected), rejected, self.rank)
        ref_chosen, ref_rejected = self._reference_logps(batch, indices)
        local = torch.zeros(len(indices), dtype=torch.bool, device=self.dev)
        local[self.schedule.rank_slice(self.rank)] = True
        out = self.loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, self._data_factor(indices),
                        keep_set_generator(self.config.seed, step, micro), local_mask=local)
        if not torch.isfinite(out.losses.detach()).all():
            raise NonFiniteLossInput(f"the loss is non-finite: {out.losses.detach().tolist()}")
        self.engine.backward(self._objective(out, chosen, batch))
        self.engine.step()
        metrics.add(out, len(indices), all_reduce_sum(float(batch.num_tokens), self.dev))

    def _objective(self, out: DamaLossOutput, chosen: torch.Tensor, batch: PairBatch) -> torch.Tensor:
        """The preference loss, plus the chosen answers' NLL when ``train.loss.chosen_nll_weight`` > 0.

        ``chosen`` is this rank's (B,) policy log-probs: the NLL is averaged over this rank's pairs,
        as the preference loss is over this rank's kept pairs.
        """
        options = self.config.train.loss
        loss = options.preference_weight * out.loss
        if options.chosen_nll_weight > 0:
            nll = chosen_nll(chosen, batch.response_mask[: batch.num_pairs].sum(dim=1))
            out.extra["chosen_nll"] = float(nll.detach())
            loss = loss + options.chosen_nll_weight * nll
        return loss

    def train_step(self, step: int) -> dict[str, float]:
        started = time.perf_counter()
        metrics = StepMetrics()
        for micro in range(self.schedule.gradient_accumulation):
            self.micro_step(step, micro, metrics)
        summary = metrics.summary(time.perf_counter() - started, float(self.engine.get_lr()[0]))
        summary["running_gap"] = self.loss.gap.mean  # R̄ after this step's updates
        return summary


def _reference_module(config: DamoConfig, policy: Any, module: PairLogps) -> PairLogps | None:
    if config.train.reference == "precomputed":
        return None
    if config.train.lora.enabled:
        return module  # the same weights with adapters disabled (see Trainer._reference_context)
    frozen = copy.deepcopy(policy).eval().requires_grad_(False)
    return PairLogps(frozen, config.train.logps_chunk_tokens).to(device.choose_device())


def build_trainer(config: DamoConfig, data: Path, model: str) -> Trainer:
    rank, world = init_distributed()
    t = config.train
    dataset = PreferenceDataset(data)
    uses_data = arm_uses_data(t.loss.arm)
    rows = TrainRows(dataset, need_reference=t.reference == "precomputed", need_delta=uses_data,
                     rejected_tokens=t.loss.rejected_tokens)
    delta_mean = resolve_delta_mean(t, dataset) if uses_data else None
    schedule = make_schedule(t, len(rows), world, config.seed)
    model_dir = resolve_model(model, config)
    torch.manual_seed(config.seed)
    policy = load_policy(model_dir, t.precision, freeze_vision_tower=t.freeze_vision_tower, lora=t.lora,
                         gradient_checkpointing=t.gradient_checkpointing)
    module = PairLogps(policy, t.logps_chunk_tokens, prompt_once=plan(t, world).prompt_once)
    reference = _reference_module(config, policy, module)
    engine = build_engine(module, t, world, device.choose_dtype(t.precision), schedule.total_steps)
    return Trainer(config=config, engine=engine, processor=load_processor(model_dir), rows=rows,
                   schedule=schedule, rank=rank, world=world, dev=device.choose_device(),
                   delta_mean=delta_mean, reference=reference, loss=PreferenceLoss(t.loss),
                   model_dir=model_dir, data_checksum=dataset.manifest.checksum)


def fit(trainer: Trainer, out: Path, tracker: Any,
        save_candidate: Callable[[int], None] | None = None) -> tuple[list[dict[str, float]], int]:
    """Train from the last complete checkpoint (or step 0) to the end; returns (history, resumed_from).

    ``save_candidate(step)`` is called on every rank after each step that ``train.select`` makes a
    candidate (:func:`damo.train.select.is_candidate`).
    """
    t = trainer.config.train
    root = out / "checkpoints"
    history: list[dict[str, float]] = []
    start, last_checkpoint = 0, None
    restored = checkpoint.load_latest(trainer.engine, root, trainer.rank)
    if restored is not None:
        state, last_checkpoint = restored
        start, history = int(state["step"]), list(state["history"])
        trainer.loss.load_state_dict(state["running_gap"])
    total = trainer.schedule.total_steps
    bar = tqdm(total=total, initial=start, desc="train", disable=trainer.rank != 0, unit="step")
    for step in range(start, total):
        try:
            summary = trainer.train_step(step)
        except NonFiniteLossInput as err:
            raise TrainingError(f"non-finite loss at step {step + 1}: {err}; the last good checkpoint is "
                                f"{last_checkpoint or 'none (no checkpoint saved yet)'}") from err
        done = step + 1
        if done % t.logging_steps == 0 or done == total:
            history.append({"step": float(done), **summary})
            if tracker is not None:
                tracker.log_metrics(summary, step=done)
        if done % t.save_steps == 0 or done == total:
            client = {"step": done, "running_gap": trainer.loss.state_dict(), "history": history}
            last_checkpoint = checkpoint.save(trainer.engine, root, done, client, trainer.rank,
                                              t.keep_checkpoints)
        if save_candidate is not None and select.is_candidate(done, total, t.select):
            save_candidate(done)
        bar.update(1)
        bar.set_postfix(loss=f"{summary['loss']:.4f}", acc=f"{summary['rewards/accuracy']:.2f}")
    bar.close()
    return history, start


def release_optimizer_state(trainer: Trainer) -> None:
    """After the last checkpoint, free what only further steps would need before the model is saved.

    The one-process engine frees Adam's moments in host memory, where the model folder is then
    built. DeepSpeed's engines keep theirs: on an accelerator they do not compete with that host copy.
    """
    if isinstance(trainer.engine, LocalEngine):
        trainer.engine.release_optimizer_state()


def release_engine(trainer: Trainer) -> None:
    """Free the trained policy, its engine (optimizer state, ZeRO partitions) and any reference model,
    once no rank trains or gathers any more and the weights are saved elsewhere (train.select's
    candidates): rank 0 then loads each candidate to evaluate it, on an accelerator beside nothing."""
    destroy = getattr(trainer.engine, "destroy", None)  # DeepSpeed's engine unhooks ZeRO-3 here
    if destroy is not None:
        destroy()
    trainer.engine, trainer.reference = None, None
    device.release_cached_memory()


def trained_state_dict(trainer: Trainer) -> dict[str, Any] | None:
    """The complete trained weights on rank 0 (None elsewhere); collective under ZeRO-3."""
    if trainer.engine.zero_optimization_stage() == 3:  # the stage in effect (engine.plan), not the configured
        state = trainer.engine._zero3_consolidated_16bit_state_dict()
        return state if trainer.rank == 0 else None
    return trainer.engine.module.state_dict() if trainer.rank == 0 else None
