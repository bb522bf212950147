"""The whole DAMA pipeline through kfp.local (`damo run`) on a small tiny world, against the real
SeaweedFS + MLflow stack: one JSON line, a registered model version whose files are in the object
store, a base-vs-aligned report, nested step runs — and a failing step named with its error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from damo.cli import main
from damo.config import DamoConfig
from damo.stack import StackEnv
from damo.storage import s3_client, split_s3_uri

pytestmark = pytest.mark.integration

QUICK_WORLD = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
               "tiny_world.eval_images=8", "tiny_world.selection_images=8",
               "train.max_steps=6",  # the preset's 120 steps: too many here
               "train.select.from_step=2", "train.select.every=2",  # candidates at steps 2, 4, 6
               "train.select.floor={}")  # an untrained policy reaches no well-formedness floor


def run_args(world: Path, stack_config: DamoConfig, out: Path, *extra: str) -> list[str]:
    sets = [*QUICK_WORLD, f"pipeline.tiny_world_dir={world}", f"score.clip_model={world / 'clip'}",
            f"pipeline.output_dir={out}", f"stack.state_dir={stack_config.stack.state_dir}",
            f"tracking.experiment={stack_config.tracking.experiment}", *extra]
    return ["run", "--config", "tiny", *(arg for s in sets for arg in ("--set", s))]


def json_line(out: str) -> dict[str, Any]:
    (line,) = out.strip().splitlines()  # stdout holds the summary and nothing else
    return json.loads(line)


def test_damo_run_registers_an_evaluated_model(tiny_world_quick: Path, stack_environ: StackEnv,
                                               stack_config: DamoConfig, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    assert main(run_args(tiny_world_quick, stack_config, tmp_path / "runs")) == 0
    summary = json_line(capsys.readouterr().out)

    name, version = "damo-tiny", summary["model_version"]
    assert summary["model_uri"] == f"models:/{name}/{version}" and "candidate" in summary["aliases"]
    client = MlflowClient(stack_environ.tracking_uri)
    source = client.get_model_version(name, version).source
    bucket, prefix = split_s3_uri(source)
    keys = {o["Key"].rsplit("/", 1)[-1] for o in s3_client().list_objects_v2(
        Bucket=bucket, Prefix=prefix)["Contents"]}
    assert {"config.json", "model.safetensors"} <= keys, "the version's files are in the object store"

    report = Path(summary["report"]).read_text()
    assert "baseline" in report and "model" in report and "Δ" in report
    assert set(summary["metrics"]) == set(summary["baseline_metrics"]) and summary["metrics"]

    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED"
    nested = client.search_runs([parent.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{summary['run_id']}'")
    steps = {r.info.run_name for r in nested}
    assert {"ingest", "score", "reference", "train", "evaluate", "register"} <= steps

    run_dir = Path(summary["output_dir"])
    assert run_dir.parent == tmp_path / "runs"
    for step in ("ingest", "score", "reference", "train", "evaluate", "register"):
        assert (run_dir / step / "executor_output.json").is_file(), step


def test_a_failing_step_stops_the_run_with_its_name_and_error(
        tiny_world_quick: Path, stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-data"
    code = main(run_args(tiny_world_quick, stack_config, tmp_path / "runs", f"pipeline.source={missing}"))
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("damo run: step 'ingest' failed: ") and str(missing) in last
    assert not list((tmp_path / "runs").glob("damo-dama-*/score")), "no step runs after the failure"
