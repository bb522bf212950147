"""The evaluate step: answers (generated, or given) → metrics per benchmark → a side-by-side report.

Outputs in ``paths.out``: ``answers.<benchmark>.<decoding>.jsonl`` and ``metrics.json`` of the model
(or of the given answers), the same under ``baseline/`` when a baseline is given, ``details.*.jsonl``
and ``judge.*.jsonl`` (per-response CHAIR details, raw judge replies), ``report.md`` with
``plots/*.png``, the resolved ``config.yaml`` and ``result.json``. ``metrics.json`` maps a metric group
(the benchmark, or ``<benchmark>_<decoding>`` for its non-primary decodings) to its metrics, so a
registry gate names e.g. ``object_halbench.chair_response``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damo.config import ConfigError, DamoConfig
from damo.eval import benchmarks
from damo.eval.items import BenchContext, BenchmarkDataError, coverage, read_records
from damo.eval.report import flatten, write_report
from damo.eval.scoring import generate_and_score
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker

log = logging.getLogger(__name__)
# Metric names echoed in the step's summary (the full set is in metrics.json).
HEADLINE_METRICS = ("chair_response", "chair_mention", "extra_object_rate", "well_formed", "f1",
                    "amber_score", "average", "relative_score")


@dataclass(frozen=True)
class EvaluatePaths:
    out: Path
    model: str | None = None  # model folder, s3:// or models:/NAME@ALIAS
    baseline: str | None = None  # a model like ``model``, or an answers file
    answers: Path | None = None  # score these answers instead of generating


def _score_answers(config: DamoConfig, answers_file: Path, out: Path) -> dict[str, Any]:
    """Score answers produced elsewhere; a record without ``benchmark`` needs exactly one configured."""
    ev = config.evaluate
    records = read_records(answers_file)
    grouped: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        name = record.get("benchmark")
        if name is None:
            if len(ev.benchmarks) != 1:
                raise BenchmarkDataError(f"{answers_file}: records without 'benchmark' need exactly one "
                                         f"evaluate.benchmarks entry, got {ev.benchmarks}")
            name = ev.benchmarks[0]
        grouped[(name, record.get("decoding"))].append(record)
    ctx = BenchContext(config, out, Path(ev.data_cache), generate=False)
    results: dict[str, Any] = {}
    for (name, decoding), group_records in grouped.items():
        bench = benchmarks.get(name)
        group = benchmarks.group_name(name, decoding, benchmarks.decodings(ev, name)[0].name)
        items = bench.load_items(ctx)  # every benchmark's item list: coverage is measured against it
        counted = coverage(group_records, items, name, ev.allow_missing_answers)
        scored = bench.score(ctx, items, group_records, group)
        results[group] = {**scored, **counted, "answers": str(answers_file)}
    return results


def _evaluate_one(config: DamoConfig, source: str | Path, out: Path,
                  is_answers: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Metrics of one column, and what was evaluated (the model URI + its Hub commit, or the file)."""
    out.mkdir(parents=True, exist_ok=True)
    if is_answers:
        results, provenance = _score_answers(config, Path(source), out), {"answers": str(source)}
    else:
        results, provenance = generate_and_score(config, str(source), out)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    return results, provenance


@dataclass(frozen=True, eq=False)
class EvaluateResult(StepResult):
    """``headline``: the model's headline metrics (``group.metric``); the baseline's are in ``stats``
    as ``baseline_headline``, beside ``metrics`` (the file) and ``groups``."""

    report: str = ""
    headline: dict[str, float] = field(default_factory=dict)


def run(config: DamoConfig, paths: EvaluatePaths) -> EvaluateResult:
    """Evaluate ``paths.model`` (or score ``paths.answers``), and ``paths.baseline`` beside it."""
    if (paths.model is None) == (paths.answers is None):
        raise ConfigError("evaluate needs exactly one of a model (--model) or an answers file (--answers)")
    for name in config.evaluate.benchmarks:  # all inputs checked before anything is written
        benchmarks.get(name)
    if paths.answers is not None:
        if not Path(paths.answers).is_file():
            raise BenchmarkDataError(f"answers file {paths.answers} does not exist")
        read_records(Path(paths.answers))
    out = Path(paths.out)
    params = {"benchmarks": ",".join(config.evaluate.benchmarks), "model": paths.model,
              "baseline": paths.baseline, "answers": paths.answers}
    return run_step(config, "evaluate", out, lambda tracker: _run(config, paths, out, tracker), params=params)


def _run(config: DamoConfig, paths: EvaluatePaths, out: Path, tracker: Tracker) -> EvaluateResult:
    sources: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    evaluated: dict[str, dict[str, str]] = {}
    if paths.baseline is not None:  # first column of the report: the reference of Δ
        is_file = Path(paths.baseline).is_file()
        results["baseline"], evaluated["baseline"] = _evaluate_one(config, paths.baseline, out / "baseline",
                                                                   is_file)
        sources["baseline"] = paths.baseline
    model_source: str | Path = paths.answers if paths.answers is not None else str(paths.model)
    results["model"], evaluated["model"] = _evaluate_one(config, model_source, out, paths.answers is not None)
    sources["model"] = str(model_source)
    report = write_report(out, results, sources)
    for column, metrics in results.items():
        prefix = "" if column == "model" else f"{column}."
        tracker.log_metrics({prefix + k: v for k, v in flatten(metrics).items()})
    for artifact in (out / "metrics.json", report, *sorted((out / "plots").glob("*.png"))):
        tracker.log_artifact(artifact)
    headlines = {column: {k: v for k, v in flatten(metrics).items() if k.split(".")[-1] in HEADLINE_METRICS}
                 for column, metrics in results.items()}
    stats: dict[str, Any] = {"metrics": str(out / "metrics.json"), "groups": list(results["model"]),
                             "evaluated": evaluated}
    stats |= {f"{column}_headline": h for column, h in headlines.items() if column != "model"}
    return EvaluateResult(step="evaluate", out=str(out), report=str(report), headline=headlines["model"],
                          stats=stats)
