"""One training rank from start to outputs: :func:`train_here`, run by every rank of a training run.

A single process (``damo train`` with one process, a test) calls it directly; under a launcher
(:mod:`damo.train.launch`, torchrun, a Kubeflow TrainJob) every :mod:`damo.train.worker` rank does.
Rank 0 runs it as the ``train`` step (:func:`damo.skeleton.run_step`: its MLflow run, closed FAILED
on any exception; ``config.yaml``; ``result.json``) and writes the model folder and ``metrics.json``.
Re-running on the same ``out`` resumes from the last complete checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig
from damo.models import model_provenance
from damo.skeleton import run_step
from damo.tracking import Tracker
from damo.train import select
from damo.train.engine import init_distributed, plan
from damo.train.loop import (
    Trainer,
    build_trainer,
    fit,
    release_engine,
    release_optimizer_state,
    trained_state_dict,
)
from damo.train.results import TrainResult, model_card, save_model_folder, write_metrics


@dataclass(frozen=True)
class TrainPaths:
    data: Path
    model: str
    out: Path


def train_here(config: DamoConfig, paths: TrainPaths) -> TrainResult:
    """Train as one rank of the current process group (created if absent). Rank 0 writes the outputs."""
    import torch.distributed as dist

    started = time.perf_counter()
    rank, world = init_distributed()
    lead = rank == 0

    def work(tracker: Tracker) -> TrainResult:
        trainer = build_trainer(config, paths.data, paths.model)
        tracker.log_params({"train.steps": trainer.schedule.total_steps})
        selecting = config.train.select.benchmark is not None
        if selecting and lead:
            select.check_data(config, paths.out)
        saver = _candidate_saver(config, paths, trainer) if selecting else None
        history, resumed_from = fit(trainer, paths.out, tracker if lead else None, saver)
        release_optimizer_state(trainer)
        state = None if selecting else trained_state_dict(trainer)
        # The last collective. From here rank 0 works alone: evaluating train.select's candidates can
        # outlast the process group's timeout, so the other ranks leave now instead of waiting at a
        # barrier for it (a launcher still waits for every rank, and fails the run if rank 0 fails).
        dist.barrier()
        if selecting:  # the weights are in the candidates' folders; the engine's memory is not needed
            release_engine(trainer)
        if not lead:
            return TrainResult(step="train", stats={"rank": rank})
        selection = (select.select_model(config, paths.out, tracker, str(trainer.model_dir))
                     if selecting else None)
        result = _write_outputs(config, paths, trainer, history, resumed_from, state, selection, started)
        if selection is not None:  # only now: a rerun before this point still finds every candidate
            select.prune_candidates(config, paths.out, selection["step"])
        tracker.log_artifact(paths.out / "metrics.json")
        return result

    # The layout chosen for this world size (ZeRO stage in effect, all-reduce, fused AdamW) is logged
    # with the run, so a reader sees which fast path trained the model.
    params = {"train.model": str(paths.model), **plan(config.train, world).params()}
    return run_step(config, "train", paths.out if lead else None, work, params=params, track=lead)


def _card(config: DamoConfig, paths: TrainPaths, trainer: Trainer, steps: int, final: dict[str, float],
          selection: dict[str, Any] | None = None) -> str:
    base = model_provenance(paths.model, trainer.model_dir)  # + the Hub commit for a Hub id
    base_text = f"{paths.model}" + (f" (Hub commit {base['hub_commit']})" if "hub_commit" in base else "")
    return model_card(config, base_model=base_text, data=str(paths.data), data_checksum=trainer.data_checksum,
                      num_pairs=len(trainer.rows), delta_mean=trainer.delta_mean, steps=steps, final=final,
                      selection=selection)


def _candidate_saver(config: DamoConfig, paths: TrainPaths, trainer: Trainer) -> Any:
    """Called on every rank at a candidate step: the weights (gathered under ZeRO-3) → a candidate."""
    def save(step: int) -> None:
        state = trained_state_dict(trainer)
        if state is not None:  # rank 0
            card, base = _card(config, paths, trainer, step, {}), trainer.model_dir
            select.save_candidate(paths.out, step,
                                  lambda into: save_model_folder(state, base, config, into, card))
    return save


def _write_outputs(config: DamoConfig, paths: TrainPaths, trainer: Trainer, history: list[dict[str, float]],
                   resumed_from: int, state: dict[str, Any] | None, selection: dict[str, Any] | None,
                   started: float) -> TrainResult:
    """The model folder (built from ``state``, or the selected candidate's), metrics and the result."""
    final = history[-1] if history else {}
    base = model_provenance(paths.model, trainer.model_dir)
    if selection is None:
        assert state is not None  # rank 0 without selection always has the trained weights
        card = _card(config, paths, trainer, trainer.schedule.total_steps, final)
        model_dir = save_model_folder(state, trainer.model_dir, config, paths.out, card)
    else:
        model_dir = paths.out / "model"  # the chosen candidate, copied there by select_model
        chosen = [h for h in history if h["step"] == selection["step"]]
        (model_dir / "README.md").write_text(_card(config, paths, trainer, selection["step"],
                                                   chosen[-1] if chosen else {}, selection))
    extra = {"arm": config.train.loss.arm, "steps": trainer.schedule.total_steps, "base_model": base,
             "resumed_from": resumed_from, "world_size": trainer.world,
             "running_gap": trainer.loss.state_dict(), "layout": plan(config.train, trainer.world).params(),
             **({"selected_step": selection["step"], "selection": selection} if selection else {})}
    write_metrics(paths.out, history, extra)
    seconds = time.perf_counter() - started
    return TrainResult(step="train", model=str(model_dir), checkpoints=str(paths.out / "checkpoints"),
                       metrics=str(paths.out / "metrics.json"),
                       stats={**extra, "seconds": round(seconds, 3), "final": final})
