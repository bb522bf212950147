"""The local run's kfp-free half: absolute paths, failure reports, the summary line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo.config import ConfigError, load_config
from damo.steps.evaluate import EvaluateResult
from damo.steps.local_run import failed_step, latest_run_dir, summary, with_absolute_paths
from damo.steps.register import RegisterResult

# What kfp.local printed when a task of the pipeline raised (ANSI colours included).
KFP_MESSAGE = ("Pipeline \x1b[95m'damo-dama'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
               "Inner task failed: \x1b[96m'train'\x1b[0m.")
TASK_OUTPUT = """\
[KFP Executor 2026-11-26 06:19:57,763 INFO]: Looking for component `train` in --component_module_path
Traceback (most recent call last):
  File "/tmp/tmp.py", line 12, in train
    raise TrainingError("loss is NaN at step 3")
damo.train.loop.TrainingError: loss is NaN at step 3
06:19:57.780 - ERROR - Task 'train' finished with status FAILURE
"""


def test_failed_step_names_the_task_and_its_error() -> None:
    failure = failed_step(KFP_MESSAGE, TASK_OUTPUT)
    assert failure.step == "train"
    assert failure.error == "damo.train.loop.TrainingError: loss is NaN at step 3"
    assert str(failure) == "step 'train' failed: damo.train.loop.TrainingError: loss is NaN at step 3"


def test_failed_lone_task_and_missing_traceback() -> None:
    failure = failed_step("Task \x1b[96m'tiny-world'\x1b[0m finished with status FAILURE", "no traceback")
    assert failure.step == "tiny-world"
    assert "finished with status FAILURE" in failure.error  # kfp's own words when nothing better exists


def test_local_paths_become_absolute(tmp_path: Path) -> None:
    (tmp_path / ".damo" / "tiny-world" / "clip").mkdir(parents=True)
    config = load_config("tiny", ["pipeline.base_model=models/base", "pipeline.source=s3://b/data"])
    resolved = with_absolute_paths(config, tmp_path)
    assert resolved.pipeline.tiny_world_dir == str(tmp_path / ".damo" / "tiny-world")
    assert resolved.pipeline.output_dir == str(tmp_path / ".damo" / "runs")
    assert resolved.pipeline.base_model == str(tmp_path / "models" / "base")
    assert resolved.pipeline.source == "s3://b/data"  # URIs are left alone
    assert resolved.score.clip_model == str(tmp_path / ".damo" / "tiny-world" / "clip")
    assert config.pipeline.output_dir == ".damo/runs"  # the input config is not changed


def test_summary_names_model_metrics_of_both_models_and_report(tmp_path: Path) -> None:
    registered = {"step": "register", "model_uri": "models:/damo-tiny/3", "name": "damo-tiny",
                  "version": "3", "aliases": ["candidate", "champion"], "run_id": "abc123"}
    evaluation = tmp_path / "evaluation"
    (evaluation / "baseline").mkdir(parents=True)
    (evaluation / "baseline" / "metrics.json").write_text(json.dumps(
        {"tiny_world": {"chair_response": 0.5, "responses": 8}}))
    evaluated = {"step": "evaluate", "out": str(evaluation), "report": str(evaluation / "report.md"),
                 "headline": {"tiny_world.chair_response": 0.25}}
    line = summary(RegisterResult.from_json(json.dumps(registered)),
                   EvaluateResult.from_json(json.dumps(evaluated)), "parent42", tmp_path)
    assert line == {"run_id": "parent42", "model_uri": "models:/damo-tiny/3", "model_version": "3",
                    "aliases": ["candidate", "champion"], "output_dir": str(tmp_path),
                    "metrics": {"tiny_world.chair_response": 0.25},
                    "baseline_metrics": {"tiny_world.chair_response": 0.5},
                    "report": str(evaluation / "report.md")}


def test_latest_run_dir(tmp_path: Path) -> None:
    import os

    old, new = tmp_path / "damo-dama-2026-01-01", tmp_path / "damo-dama-2026-01-02"
    old.mkdir(), new.mkdir()
    os.utime(old, (1, 1))
    assert latest_run_dir(tmp_path, "damo-dama") == new


QUICK_WORLD = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
               "tiny_world.eval_images=8", "tiny_world.selection_images=8")


def test_a_built_world_is_reused_only_with_the_same_settings(tiny_world_quick: Path) -> None:
    from damo.steps.local_run import ensure_tiny_world

    before = (tiny_world_quick / "world.json").stat().st_mtime_ns
    assert ensure_tiny_world(load_config("tiny", QUICK_WORLD), tiny_world_quick) == tiny_world_quick
    assert (tiny_world_quick / "world.json").stat().st_mtime_ns == before  # not rebuilt
    with pytest.raises(ConfigError, match=r"built with other settings \(num_pairs\)"):
        ensure_tiny_world(load_config("tiny", [*QUICK_WORLD, "tiny_world.num_pairs=128"]), tiny_world_quick)


def test_a_missing_world_is_built_in_place_and_a_foreign_folder_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from damo.steps import tiny_world
    from damo.steps.local_run import ensure_tiny_world, tiny_world_is_built

    built: list[Path] = []

    def build(config: object, paths: tiny_world.TinyWorldPaths) -> dict[str, str]:
        """Stands in for the (minutes-long) build: the layout ensure_tiny_world checks."""
        assert paths.out != world and not any(paths.out.iterdir()), "builds in an empty temporary folder"
        for sub in ("data", "policy"):
            (paths.out / sub).mkdir()
        (paths.out / "world.json").write_text("{}")
        built.append(paths.out)
        return {}

    monkeypatch.setattr(tiny_world, "run", build)
    world = tmp_path / "world"
    assert ensure_tiny_world(load_config("tiny", QUICK_WORLD), world) == world
    assert tiny_world_is_built(world) and len(built) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no temporary folder left behind
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds no built tiny world"):
        ensure_tiny_world(load_config("tiny", QUICK_WORLD), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
