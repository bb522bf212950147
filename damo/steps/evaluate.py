"""The evaluate step: answers (generated, or given) → metrics per benchmark → a side-by-side report.

Outputs in ``paths.out``: ``answers.<benchmark>.<decoding>.jsonl`` and ``metrics.json`` of the model
(or of the given answers), the same under ``baseline/`` when a baseline is given, ``details.*.jsonl``
and ``judge.*.jsonl`` (per-response CHAIR details, raw judge replies), ``report.md`` with
``plots/*.png``, the resolved ``config.yaml`` and ``result.json``. ``metrics.json`` maps a metric group
(the benchmark, or ``<benchmark>_<decoding>`` for its non-primary decodings) to its metrics, so a
registry gate names e.g. ``object_halbench.chair_response``.
"""

from __future__ import annotations

import gc
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, save_resolved
from damo.eval import benchmarks
from damo.eval.items import BenchContext, BenchmarkDataError, read_records
from damo.eval.report import flatten, write_report
from damo.models import resolve_model
from damo.tracking import Tracker, open_tracker

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


def _generate_and_score(config: DamoConfig, model_uri: str, out: Path) -> dict[str, Any]:
    from damo.eval.generation import HFResponder, generate_answers  # torch/transformers only here

    ev = config.evaluate
    ctx = BenchContext(config, out, Path(ev.data_cache))
    # every benchmark's prompts first: a missing file fails now, not after hours of generation
    prompts = {name: benchmarks.get(name).load_items(ctx) for name in ev.benchmarks}
    responder = HFResponder(resolve_model(model_uri), ev.max_new_tokens, config.seed, ev.precision)
    results: dict[str, Any] = {}
    for name, items in prompts.items():
        bench = benchmarks.get(name)
        choices = benchmarks.decodings(ev, name)
        if bench.judged and any(d.samples > 1 for d in choices):
            raise ValueError(f"{name}: judged benchmarks take one answer per prompt (decoding samples=1)")
        log.info("%s: %d prompts, decodings %s, model %s", name, len(items), [d.name for d in choices],
                 model_uri)
        for decoding in choices:
            path = out / f"answers.{name}.{decoding.name}.jsonl"
            answers = generate_answers(responder, items, decoding, path, benchmark=name, model=model_uri,
                                       batch_size=ev.batch_size)
            group = benchmarks.group_name(name, decoding.name, choices[0].name)
            results[group] = {**bench.score(ctx, items, answers, group),
                              "decoding": decoding.model_dump(), "answers": path.name}
    del responder
    gc.collect()
    return results


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
        items = bench.load_items(ctx) if bench.needs_items else []
        results[group] = {**bench.score(ctx, items, group_records, group), "answers": str(answers_file)}
    return results


def _evaluate_one(config: DamoConfig, source: str | Path, out: Path, is_answers: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if is_answers:
        results = _score_answers(config, Path(source), out)
    else:
        results = _generate_and_score(config, str(source), out)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


def run(config: DamoConfig, paths: EvaluatePaths) -> dict[str, Any]:
    """Evaluate ``paths.model`` (or score ``paths.answers``), and ``paths.baseline`` beside it."""
    if (paths.model is None) == (paths.answers is None):
        raise ValueError("evaluate needs exactly one of a model (--model) or an answers file (--answers)")
    out = Path(paths.out)
    save_resolved(config, out)
    tracker = open_tracker(config, "evaluate")
    tracker.log_params({"benchmarks": ",".join(config.evaluate.benchmarks), "model": paths.model,
                        "baseline": paths.baseline, "answers": paths.answers})
    status = "FAILED"
    try:
        summary = _run(config, paths, out, tracker)
        status = "FINISHED"
    finally:
        tracker.close(status)
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    return summary


def _run(config: DamoConfig, paths: EvaluatePaths, out: Path, tracker: Tracker) -> dict[str, Any]:
    sources: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    if paths.baseline is not None:  # first column of the report: the reference of Δ
        is_file = Path(paths.baseline).is_file()
        results["baseline"] = _evaluate_one(config, paths.baseline, out / "baseline", is_file)
        sources["baseline"] = paths.baseline
    model_source: str | Path = paths.answers if paths.answers is not None else str(paths.model)
    results["model"] = _evaluate_one(config, model_source, out, paths.answers is not None)
    sources["model"] = str(model_source)
    report = write_report(out, results, sources)
    for column, metrics in results.items():
        prefix = "" if column == "model" else f"{column}."
        tracker.log_metrics({prefix + k: v for k, v in flatten(metrics).items()})
    for artifact in (out / "metrics.json", report, *sorted((out / "plots").glob("*.png"))):
        tracker.log_artifact(artifact)
    summary: dict[str, Any] = {"out": str(out), "metrics": str(out / "metrics.json"), "report": str(report),
                               "groups": list(results["model"])}
    for column, metrics in results.items():
        key = "headline" if column == "model" else f"{column}_headline"
        summary[key] = {k: v for k, v in flatten(metrics).items() if k.split(".")[-1] in HEADLINE_METRICS}
    return summary
