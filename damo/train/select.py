"""Checkpoint selection on held-out data (``train.select``): which of a run's weights become the model.

How long to train is the setting that most decides what DPO-style training does to a model: too few
steps leave the behaviour it targets, too many wear down everything else (on the tiny world the
answers lose their grammar; benchmarks/tiny_effect.md). The safe count differs from one dataset —
even one tiny world — to the next, so a count fixed in a config is either timid or unsafe somewhere.
Choosing among candidates on *held-out* data, with a quality floor, adapts it per run without tuning
on the benchmark the model is finally judged on.

Layout in the train step's ``out``: ``candidates/step-00000040/model/`` (an HF folder, as
``out/model``) and ``candidates/step-00000040/eval/`` (that candidate's answers and ``metrics.json``),
``selection.json`` (every candidate's metric and floor values, and the choice); the chosen candidate's
folder is copied to ``out/model``. With ``base_floor``, ``candidates/base/eval/`` holds the base
model's answers and metrics on the same data.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, SelectConfig
from damo.errors import DamoError

log = logging.getLogger(__name__)

CANDIDATES = "candidates"
SELECTION_FILE = "selection.json"
BASE = "base"  # candidates/base/eval: the base model's held-out answers and metrics (base_floor)


class SelectionError(DamoError, RuntimeError):
    """No candidate reached the floor (or a named metric is not measured); the message lists them."""


@dataclass(frozen=True)
class Candidate:
    step: int
    metrics: dict[str, float]  # the flattened metrics of its held-out evaluation

    def reaches(self, floor: dict[str, float]) -> bool:
        return all(self.metrics[key] >= least for key, least in floor.items())


def is_candidate(done: int, total: int, select: SelectConfig) -> bool:
    """Whether the weights after optimizer step ``done`` (of ``total``) are saved as a candidate."""
    if select.benchmark is None:
        return False
    return done == total or (done >= select.from_step and (done - select.from_step) % select.every == 0)


def candidate_dir(out: Path, step: int) -> Path:
    return out / CANDIDATES / f"step-{step:08d}"


def save_candidate(out: Path, step: int, write_model: Any) -> Path:
    """``write_model(folder)`` writes ``folder/model``; done in a temporary folder renamed into place,
    so a killed run never leaves a half-written candidate that selection would then read."""
    final = candidate_dir(out, step)
    tmp = final.with_name(f".{final.name}.tmp")
    for stale in (tmp, final):  # a resumed run rewrites candidates after its last checkpoint
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    write_model(tmp)
    tmp.rename(final)
    return final


def choose(candidates: list[Candidate], select: SelectConfig,
           floor: dict[str, float] | None = None) -> Candidate:
    """The candidate with the best ``select.metric`` among those reaching every ``floor`` (by default
    ``select.floor``; :func:`effective_floor` adds the base model's).

    Ties go to the earlier step: it has drifted less from the base model for the same measured gain.
    """
    floor = select.floor if floor is None else floor
    needed = [select.metric, *floor]
    for candidate in candidates:
        missing = [k for k in needed if k not in candidate.metrics or math.isnan(candidate.metrics[k])]
        if missing:
            raise SelectionError(f"candidate at step {candidate.step}: {missing} not measured by "
                                 f"{select.benchmark!r} (measured: {sorted(candidate.metrics)[:12]}...)")
    passing = [c for c in candidates if c.reaches(floor)]
    if not passing:
        table = "; ".join(f"step {c.step}: " + ", ".join(f"{k}={c.metrics[k]:.4f}" for k in floor)
                          for c in candidates)
        raise SelectionError(f"no candidate reached the floor {floor} (train.select.floor, base_floor) "
                             f"on the held-out data ({table}): train fewer steps, or select from an earlier "
                             "step")
    sign = 1.0 if select.mode == "min" else -1.0
    return min(passing, key=lambda c: (sign * c.metrics[select.metric], c.step))


def effective_floor(select: SelectConfig, base: dict[str, float] | None) -> dict[str, float]:
    """``select.floor``, raised where ``select.base_floor`` asks for the base model's held-out value
    less its allowed drop (``base``: the base model's metrics; needed only with a base floor)."""
    floor = dict(select.floor)
    if not select.base_floor:
        return floor
    if base is None:
        raise SelectionError("train.select.base_floor needs the base model's held-out metrics")
    for key, drop in select.base_floor.items():
        if key not in base or math.isnan(base[key]):
            raise SelectionError(f"train.select.base_floor: {key!r} not measured for the base model by "
                                 f"{select.benchmark!r} (measured: {sorted(base)[:12]}...)")
        floor[key] = max(floor.get(key, -math.inf), base[key] - drop)
    return floor


def selection_config(config: DamoConfig) -> DamoConfig:
    """The config the candidates are evaluated with: only the selection benchmark, on its held-out data."""
    select = config.train.select
    if select.benchmark is None:
        raise SelectionError("train.select.benchmark is not set")
    data = select.data or str(Path(config.pipeline.tiny_world_dir) / "selection")
    # Its own fetch cache: the held-out data must not overwrite the benchmark's under the same key.
    evaluate = config.evaluate.model_copy(update={
        "benchmarks": [select.benchmark], "data": {**config.evaluate.data, select.benchmark: data},
        "data_cache": str(Path(config.evaluate.data_cache) / "selection")})
    return config.model_copy(update={"evaluate": evaluate})


def check_data(config: DamoConfig, out: Path) -> int:
    """Load the selection benchmark's items now (fetching s3:// data once), so that missing or bad
    held-out data fails before training rather than after it; returns the number of items."""
    from damo.eval import benchmarks
    from damo.eval.items import BenchContext

    evaluation = selection_config(config)
    ctx = BenchContext(evaluation, out / CANDIDATES, Path(evaluation.evaluate.data_cache))
    return len(benchmarks.get(str(config.train.select.benchmark)).load_items(ctx))


def evaluate_candidates(config: DamoConfig, out: Path, tracker: Any) -> list[Candidate]:
    """Every saved candidate's held-out metrics (answers kept beside it), logged per step."""
    select, evaluation = config.train.select, selection_config(config)
    # A candidate whose weights were pruned keeps its metrics: evaluated before (a rerun), not again.
    folders = sorted(p for p in (out / CANDIDATES).glob("step-*")
                     if (p / "model").is_dir() or (p / "eval" / "metrics.json").is_file())
    if not folders:
        raise SelectionError(f"no candidate was saved under {out / CANDIDATES}")
    candidates = []
    for folder in folders:
        step = int(folder.name.removeprefix("step-"))
        candidates.append(Candidate(step, _held_out_metrics(evaluation, str(folder / "model"),
                                                            folder / "eval")))
        shown = {key: candidates[-1].metrics.get(key, math.nan)
                 for key in dict.fromkeys([select.metric, *select.floor, *select.base_floor])}
        log.info("candidate step %d: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
        if tracker is not None:
            tracker.log_metrics({f"select/{k}": v for k, v in shown.items()}, step=step)
    return candidates


def _held_out_metrics(evaluation: DamoConfig, model: str, eval_dir: Path) -> dict[str, float]:
    """A model's flattened held-out metrics, measured into ``eval_dir`` once: a rerun reads them back."""
    from damo.eval.report import flatten
    from damo.eval.scoring import generate_and_score

    measured = eval_dir / "metrics.json"
    if measured.is_file():  # written only once its evaluation completed
        return flatten(json.loads(measured.read_text()))
    results, _ = generate_and_score(evaluation, model, eval_dir)
    partial = measured.with_name(f".{measured.name}.tmp")  # a killed write leaves no metrics
    partial.write_text(json.dumps(results, indent=2))
    partial.replace(measured)
    return flatten(results)


def evaluate_base(config: DamoConfig, out: Path, base_model: str) -> dict[str, float]:
    """The base (untrained) model's held-out metrics, for ``train.select.base_floor``; kept in
    ``candidates/base/eval`` beside the candidates' (no weights are copied: it is the run's input)."""
    metrics = _held_out_metrics(selection_config(config), base_model, out / CANDIDATES / BASE / "eval")
    log.info("base model: %s", ", ".join(f"{k}={metrics.get(k, math.nan):.4f}"
                                          for k in config.train.select.base_floor))
    return metrics


def prune_candidates(config: DamoConfig, out: Path, chosen: int) -> None:
    """Delete the weights of every candidate but the chosen one (``train.select.keep_candidates``
    false): they would otherwise travel with the step's output. Their answers and metrics stay."""
    if config.train.select.keep_candidates:
        return
    for folder in (out / CANDIDATES).glob("step-*"):
        if folder != candidate_dir(out, chosen) and (folder / "model").is_dir():
            shutil.rmtree(folder / "model")


def select_model(config: DamoConfig, out: Path, tracker: Any,
                 base_model: str | None = None) -> dict[str, Any]:
    """Evaluate the candidates (and, for a base floor, ``base_model``), copy the chosen one to
    ``out/model``, write ``selection.json``.

    Returns its content: the chosen ``step``, the rule (``floor``: the effective floor, base-derived
    values included; ``base``: the base model's values of the ``base_floor`` metrics), and every
    candidate's step and metrics.
    """
    select = config.train.select
    base = None
    if select.base_floor:
        if base_model is None:
            raise SelectionError("train.select.base_floor is set but no base model was given to evaluate")
        base = evaluate_base(config, out, base_model)
    candidates = evaluate_candidates(config, out, tracker)
    floor = effective_floor(select, base)
    chosen = choose(candidates, select, floor)
    keys = [select.metric, *floor]
    data = selection_config(config).evaluate.data[str(select.benchmark)]
    record = {"step": chosen.step, "benchmark": select.benchmark, "data": data, "metric": select.metric,
              "mode": select.mode, "floor": floor, "base_floor": select.base_floor,
              "base": {k: base[k] for k in select.base_floor} if base is not None else {},
              "candidates": [{"step": c.step, "reaches_floor": c.reaches(floor),
                              **{k: c.metrics[k] for k in keys}} for c in candidates]}
    weights = candidate_dir(out, chosen.step) / "model"
    if not weights.is_dir():  # a rerun with another rule chose a candidate whose weights were pruned
        raise SelectionError(f"the chosen candidate (step {chosen.step}) has no weights left at {weights}: "
                             "they were pruned by an earlier run (train.select.keep_candidates=false); "
                             "rerun training into a fresh output folder")
    model = out / "model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(weights, model)
    (out / SELECTION_FILE).write_text(json.dumps(record, indent=2))
    log.info("selected the candidate at step %d (%s=%.4f)", chosen.step, select.metric,
             chosen.metrics[select.metric])
    return record
