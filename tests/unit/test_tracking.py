"""Tracking: the steps of one pipeline run land in ONE MLflow run (nested runs under a parent), with the
resolved config as params, metrics rolled up to the parent, and failures marked FAILED. Runs against
MLflow's sqlite store (no server; fixture ``sqlite_uri`` in tests/unit/conftest.py); the server path
is covered by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.config import load_config
from damo.flat import flatten
from damo.model_card import gate_decision
from damo.tracking import PARENT_RUN_ENV, TerminalTracker, open_tracker, pipeline_run
from damo.tracking import client as registry_client
from damo.tracking.mlflow_run import MlflowTracker, redact


def test_without_a_uri_steps_log_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = open_tracker(load_config("tiny"), "score")
    assert isinstance(tracker, TerminalTracker) and tracker.run_id is None
    with tracker as t:
        t.log_metrics({"loss": 1.0}, step=0)


def test_steps_of_one_pipeline_run_nest_under_one_parent(sqlite_uri: str, tmp_path: Path) -> None:
    config = load_config("tiny", [f"tracking.uri={sqlite_uri}", "tracking.experiment=unit"])
    report = tmp_path / "report.md"
    report.write_text("# report")
    with pipeline_run(config, "damo-run") as parent:
        import os

        assert os.environ[PARENT_RUN_ENV] == parent
        for step, value in (("score", 0.25), ("train", 0.5)):
            with open_tracker(config, step) as tracker:
                tracker.log_params({"rows": 10})
                tracker.log_params({"rows": 10, "train.epochs": 99})  # same value: fine; changed: kept
                tracker.log_metrics({"loss": value}, step=3)
                tracker.log_artifact(report, "reports")
    assert PARENT_RUN_ENV not in os.environ

    client = registry_client(sqlite_uri)
    children = client.search_runs([client.get_experiment_by_name("unit").experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.tags["damo.step"] for r in children) == ["score", "train"]
    train = next(r for r in children if r.info.run_name == "train")
    assert train.info.status == "FINISHED"
    assert train.data.params["train.loss.beta"] == str(config.train.loss.beta)  # the resolved config
    assert train.data.params["rows"] == "10" and train.data.metrics["loss"] == 0.5
    assert train.data.params["train.epochs"] == str(config.train.epochs)
    assert [a.path for a in client.list_artifacts(train.info.run_id, "reports")] == ["reports/report.md"]
    assert "config.yaml" in [a.path for a in client.list_artifacts(train.info.run_id)]
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.metrics == {"score/loss": 0.25, "train/loss": 0.5}


def test_config_field_names_the_parent_and_a_failing_step_is_marked_failed(sqlite_uri: str) -> None:
    base = load_config("tiny", [f"tracking.uri={sqlite_uri}", "tracking.experiment=unit"])
    parent = MlflowTracker(sqlite_uri, "unit", "cluster-run").mlflow_run_id
    config = base.model_copy(update={"tracking": base.tracking.model_copy(update={"parent_run_id": parent})})
    with pytest.raises(RuntimeError, match="boom"), open_tracker(config, "evaluate") as tracker:
        raise RuntimeError("boom")
    run = registry_client(sqlite_uri).get_run(tracker.run_id)  # type: ignore[arg-type]
    assert run.info.status == "FAILED" and run.data.tags["mlflow.parentRunId"] == parent


def test_params_never_carry_inline_credentials() -> None:
    assert redact("http://admin:s3cret@mlflow:5000/x") == "http://***@mlflow:5000/x"
    assert redact("s3://bucket/key") == "s3://bucket/key"
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


@pytest.mark.parametrize(("candidate", "champion", "passed", "reason"), [
    ({"acc": 0.6}, None, True, "no champion yet"),
    ({"acc": 0.6}, {"acc": 0.5}, True, "no worse than champion v1"),
    ({"acc": 0.5}, {"acc": 0.5}, True, "no worse"),  # ties pass
    ({"acc": 0.4}, {"acc": 0.5}, False, "acc 0.4 vs 0.5"),
    ({}, {"acc": 0.5}, False, "lacks gate metrics ['acc']"),
])
def test_promotion_gate(candidate: dict[str, float], champion: dict[str, float] | None, passed: bool,
                        reason: str) -> None:
    ok, why = gate_decision({"acc": "max"}, candidate, champion, "1")
    assert ok is passed and reason in why


@pytest.mark.parametrize(("candidate", "champion", "passed", "reason"), [
    # hallucinates less than the champion, but writes worse: refused, even with no champion at all
    ({"chair": 0.1, "well_formed": 0.8}, {"chair": 0.3, "well_formed": 0.95}, False,
     "below the quality floor (registry.gate_floor) on well_formed 0.8 < 0.9"),
    ({"chair": 0.1, "well_formed": 0.8}, None, False, "well_formed 0.8 < 0.9"),
    ({"chair": 0.1, "well_formed": 0.9}, {"chair": 0.3}, True, "no worse than champion v2"),
    ({"chair": 0.1}, None, False, "lacks gate metrics ['well_formed']"),
])
def test_quality_floor_refuses_a_model_that_writes_worse(candidate: dict[str, float],
                                                         champion: dict[str, float] | None, passed: bool,
                                                         reason: str) -> None:
    ok, why = gate_decision({"chair": "min"}, candidate, champion, "2", {"well_formed": 0.9})
    assert ok is passed and reason in why


def test_gate_directions_and_empty_gate() -> None:
    assert gate_decision({"chair": "min"}, {"chair": 0.2}, {"chair": 0.3}, "4")[0] is True
    assert gate_decision({"chair": "min"}, {"chair": 0.4}, {"chair": 0.3}, "4")[0] is False
    assert gate_decision({}, {"acc": 1.0}, None, None) == (False, "no promotion gate configured "
                                                            "(registry.gate is empty)")
