"""Every step has one shape (damo.skeleton): an exception anywhere in a step — a bug, not only a damo
error — closes its MLflow run FAILED, never leaves it RUNNING; and every verb fails with one line.

The MLflow runs are checked in a real sqlite tracking store (no server is needed for this)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from damo.cli import main
from damo.config import DamoConfig, load_config
from damo.skeleton import StepResult
from damo.tracking import client as tracking_client


class Boom(RuntimeError):
    """Not a DamoError: the case that once left `damo train`'s run RUNNING forever."""


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("killed inside the step")


def _ingest(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import ingest

    (tmp / "src").mkdir()  # a source that exists: ingest checks it before its run opens
    return lambda: ingest.run(config, ingest.IngestPaths(source=str(tmp / "src"), out=tmp / "out"))


def _score(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import score

    return lambda: score.run(config, score.ScorePaths(data=tmp / "data", out=tmp / "out"))


def _reference(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import reference

    return lambda: reference.run(config, reference.ReferencePaths(data=tmp / "d", model="m", out=tmp / "out"))


def _train(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import train

    return lambda: train.run(config, train.TrainPaths(data=tmp / "d", model="m", out=tmp / "out"))


def _evaluate(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import evaluate

    (tmp / "a.jsonl").write_text("")
    return lambda: evaluate.run(config, evaluate.EvaluatePaths(out=tmp / "out", answers=tmp / "a.jsonl"))


def _register(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import register

    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text("{}")
    return lambda: register.run(config, register.RegisterPaths(model=tmp / "model"))


def _tiny_world(config: DamoConfig, tmp: Path) -> Callable[[], Any]:
    from damo.steps import tiny_world

    return lambda: tiny_world.run(config, tiny_world.TinyWorldPaths(out=tmp / "out"))


# step → (how to call it, the function inside it that the test makes raise)
STEPS: dict[str, tuple[Callable[[DamoConfig, Path], Callable[[], Any]], str]] = {
    "ingest": (_ingest, "damo.steps.ingest.ingest"),
    "score": (_score, "damo.steps.score._score"),
    "reference": (_reference, "damo.steps.reference._add_columns"),
    "train": (_train, "damo.train.session.build_trainer"),
    "evaluate": (_evaluate, "damo.steps.evaluate._run"),
    "register": (_register, "damo.registry.register"),
    "tiny_world": (_tiny_world, "damo.steps.tiny_world.build"),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_killed_by_any_exception_closes_its_run_failed(step: str, sqlite_uri: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = f"killed-{step}-{uuid.uuid4().hex[:8]}"
    client = tracking_client(sqlite_uri)
    experiment_id = client.create_experiment(experiment, artifact_location=(tmp_path / "art").as_uri())
    config = load_config("tiny", [f"tracking.uri={sqlite_uri}", f"tracking.experiment={experiment}"])
    call, inner = STEPS[step]
    monkeypatch.setattr(inner, _boom)
    # train joins its process group first (DeepSpeed's init, minutes on a busy CPU): one rank here
    monkeypatch.setattr("damo.train.session.init_distributed", lambda: (0, 1))
    with pytest.raises(Boom):
        call(config, tmp_path)()
    runs = client.search_runs([experiment_id])
    assert [(r.data.tags["damo.step"], r.info.status) for r in runs] == [(step, "FAILED")]
    assert not (tmp_path / "out" / "result.json").exists()  # no result for a step that did not finish


def test_a_result_reads_as_its_json_and_round_trips_typed() -> None:
    from damo.steps.register import RegisterResult

    result = RegisterResult(step="register", model_uri="models:/m/2", name="m", version="2",
                            aliases=["candidate"], stats={"gate": "passed"})
    assert result["version"] == "2" and dict(result) == json.loads(result.to_json())
    back = RegisterResult.from_json(result.to_json())
    assert back.aliases == ["candidate"] and back.stats == {"gate": "passed"} and back == result
    with pytest.raises(ValueError, match="repeat the typed fields"):
        StepResult(step="x", stats={"step": "y"})


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """One bad invocation per verb: a missing input or a malformed value. Verbs that start the local
    stack when no tracking URI is set get one (nothing listens there: they must fail before using it)."""
    missing = str(tmp / "missing")
    nobody = ["--set", "tracking.uri=http://127.0.0.1:9"]
    return {
        "tiny-world": ["--out", str(tmp / "full")],
        "ingest": ["--source", missing, "--out", str(tmp / "o1")],
        "score": ["--data", missing, "--out", str(tmp / "o2")],
        "reference": ["--data", missing, "--model", missing, "--out", str(tmp / "o3")],
        "train": ["--data", missing, "--model", missing, "--out", str(tmp / "o4")],
        "evaluate": ["--answers", missing, "--out", str(tmp / "o5")],
        "register": ["--model", missing, *nobody],
        "pull": ["not-a-models-uri", "--out", str(tmp / "o6"), *nobody],
        "prune": ["--set", "registry.prune_grace_hours=-1"],
        "schedule": ["--cron", "0 3 * * *", "--host", "http://127.0.0.1:9"],
        "submit": ["--host", "http://127.0.0.1:9", "--param", "no-equals-sign"],
        "compile": ["--out", str(tmp / "c.yaml"), "--set", "pipeline.no_such_field=1"],
        "run": ["--set", "train.loss.beta=-1"],
        "stack": ["status", "--set", "stack.mlflow_port=-5"],
    }


@pytest.mark.parametrize("verb", sorted(_bad_inputs(Path("/unused"))))
def test_every_verb_fails_with_one_line_and_no_traceback(verb: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")  # tiny-world refuses a folder that is not empty
    code = main([verb, *_bad_inputs(tmp_path)[verb]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("damo ")]
    assert code in (1, 2), err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"damo {verb}: "), err
