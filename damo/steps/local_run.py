"""The kfp-free half of the one-command local run (``damo run``): the embedded default and results.

``damo run`` runs the same pipeline a cluster runs, through kfp.local; this module prepares what it
needs on one machine (absolute paths, the tiny world when no data source is given) and turns what
the pipeline returns — or the way it failed — into the run's summary or a clear error.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from damo.config import ConfigError, DamoConfig
from damo.errors import DamoError
from damo.flat import numbers
from damo.steps.evaluate import EvaluateResult
from damo.steps.register import RegisterResult

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local: "Pipeline 'p' finished with status FAILURE. Inner task failed: 'train'." for a task of a
# pipeline (innermost first), "Task 'tiny-world' finished with status FAILURE" for a lone task.
_FAILED_TASK = re.compile(r"(?:Inner task failed: |Task )'?([\w.-]+)'?")
# The last line of a Python traceback: "pkg.module.SomeError: message" (or a bare "SomeError").
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b.*")


class StepFailed(DamoError, RuntimeError):
    """A pipeline task failed; ``step`` is its name and ``error`` the exception line it raised."""

    def __init__(self, step: str, error: str) -> None:
        super().__init__(f"step {step!r} failed: {error}")
        self.step = step
        self.error = error


def _absolute(path: str, base: Path) -> str:
    return str((base / path).resolve()) if not Path(path).is_absolute() else path


def _looks_local(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("models:/")


def with_absolute_paths(config: DamoConfig, base: Path) -> DamoConfig:
    """The config with every local path absolute: pipeline tasks must not depend on their cwd."""
    p = config.pipeline
    update: dict[str, Any] = {"tiny_world_dir": _absolute(p.tiny_world_dir, base),
                              "output_dir": _absolute(p.output_dir, base)}
    for key in ("source", "base_model"):
        value = getattr(p, key)
        if value is not None and _looks_local(value):
            update[key] = _absolute(value, base)
    resolved = config.model_copy(update={"pipeline": p.model_copy(update=update)}, deep=True)
    select_data = config.train.select.data
    if select_data is not None and _looks_local(select_data):
        resolved.train.select.data = _absolute(select_data, base)
    clip = config.score.clip_model
    is_folder = "/" in clip or (base / clip).exists()  # a folder path, not an open_clip model name
    if config.score.clip_pretrained is None and _looks_local(clip) and is_folder:
        resolved.score.clip_model = _absolute(clip, base)
    return resolved


def tiny_world_is_built(world: Path) -> bool:
    return (world / "world.json").is_file() and (world / "data").is_dir() and (world / "policy").is_dir()


def _check_same_world(config: DamoConfig, world: Path) -> None:
    """A world built with other settings is not silently reused: the run would not be what it says."""
    built = json.loads((world / "world.json").read_text())
    wanted: dict[str, Any] = config.tiny_world.model_dump(mode="json")
    differ = sorted(k for k, v in wanted.items() if built.get("tiny_world", {}).get(k) != v)
    if built.get("seed") != config.seed:
        differ.insert(0, "seed")
    if differ:
        raise ConfigError(f"the tiny world in {world} was built with other settings ({', '.join(differ)}); "
                         "delete it to rebuild, or set pipeline.tiny_world_dir to another folder")


def ensure_tiny_world(config: DamoConfig, world: Path) -> Path:
    """The tiny world in ``world``, built (by the tiny_world step) only when it is not there yet.

    The build goes to a sibling temporary folder renamed into place at the end, so an interrupted
    build never leaves a half world that a later run would take for a built one.
    """
    if tiny_world_is_built(world):
        _check_same_world(config, world)
        log.info("tiny world: reusing %s", world)
        return world
    if world.exists() and any(world.iterdir()):
        raise ConfigError(f"{world} exists but holds no built tiny world (no world.json): remove it, or "
                         "set pipeline.tiny_world_dir to an empty or absent folder")
    from damo.steps import tiny_world

    log.info("tiny world: building %s (first run with these settings)", world)
    world.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{world.name}-", dir=world.parent))
    try:
        tiny_world.run(config, tiny_world.TinyWorldPaths(out=tmp))
        if world.exists():
            world.rmdir()  # empty (checked above)
        tmp.rename(world)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return world


def failed_step(message: str, output: str) -> StepFailed:
    """The failing task and its error, from kfp.local's exception and the streamed task output."""
    clean_message, clean_output = _ANSI.sub("", message), _ANSI.sub("", output)
    match = _FAILED_TASK.search(clean_message)
    step = match.group(1) if match else "unknown"
    errors = [line.strip() for line in clean_output.splitlines() if _EXCEPTION_LINE.match(line.strip())]
    return StepFailed(step, errors[-1] if errors else clean_message.strip())


def _headline(metrics_file: Path, keys: list[str]) -> dict[str, float]:
    """The ``group.metric`` values named by ``keys`` in an evaluation's ``metrics.json``."""
    if not metrics_file.is_file():
        return {}
    flat = numbers(json.loads(metrics_file.read_text()))
    return {key: flat[key] for key in keys if key in flat}


def summary(registered: RegisterResult, evaluated: EvaluateResult, run_id: str | None,
            run_dir: Path) -> dict[str, Any]:
    """The one-line summary of a finished run: its MLflow run id, the registered model, the headline
    metrics of the aligned and the base model, the report, and the output folder."""
    baseline_file = Path(evaluated.out) / "baseline" / "metrics.json" if evaluated.out else None
    return {
        "run_id": run_id,
        "model_uri": registered.model_uri,
        "model_version": registered.version,
        "aliases": registered.aliases,
        "metrics": evaluated.headline,
        "baseline_metrics": _headline(baseline_file, list(evaluated.headline)) if baseline_file else {},
        "report": evaluated.report,
        "output_dir": str(run_dir),
    }


def latest_run_dir(root: Path, pipeline_name: str) -> Path:
    """kfp.local's folder of the newest run of ``pipeline_name`` under ``root``."""
    runs = sorted(root.glob(f"{pipeline_name}-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"no run of {pipeline_name!r} under {root}")
    return runs[-1]
