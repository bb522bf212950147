"""The compiled pipeline carries the cluster layout we intend: GPU pool, /dev/shm, secrets as env,
caching, retries, UI parameters — and no credential."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from damo.config import ConfigError, load_config
from damo.contract import MLFLOW_SECRET_KEYS, S3_SECRET_KEYS
from damo.steps.pipeline_io import RUN_PARAMETERS, config_from_yaml
from pipelines.golden import EXAMPLE_IMAGE

GPU_STEPS = ("score", "reference", "train", "evaluate")
CPU_STEPS = ("ingest", "configure", "register")


def resources(spec: dict[str, Any], step: str) -> dict[str, Any]:
    return spec["deploymentSpec"]["executors"][f"exec-{step}"]["container"]["resources"]


def test_every_step_is_a_task_in_data_order(paper_pipeline: tuple[dict, dict]) -> None:
    spec, _ = paper_pipeline
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "score", "reference", "configure", "train", "evaluate", "register"}
    deps = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert deps["score"] == {"ingest"} and deps["reference"] == {"score"}
    assert deps["train"] == {"reference", "configure"}
    assert deps["evaluate"] == {"train", "configure"}
    assert {"train", "evaluate", "reference"} <= deps["register"]


def test_gpu_steps_ask_for_gpus_on_the_gpu_pool(paper_pipeline: tuple[dict, dict]) -> None:
    spec, k8s = paper_pipeline
    for step in GPU_STEPS:
        acc = resources(spec, step)["accelerator"]
        assert acc["resourceType"] == "nvidia.com/gpu", step
        assert k8s[f"exec-{step}"]["nodeSelector"] == {"nodeSelectorJson": {"componentInputParameter":
                                                                             "gpu_node_selector"}}
        assert k8s[f"exec-{step}"]["tolerations"] == [{"tolerationJson": {"componentInputParameter":
                                                                          "gpu_tolerations"}}]
    # the train step's GPU count is the run's `gpus` parameter; the others take the configured count
    gpus_param = "{{$.inputs.parameters['pipelinechannel--gpus']}}"
    assert resources(spec, "train")["accelerator"]["resourceCount"] == gpus_param
    assert resources(spec, "score")["accelerator"]["resourceCount"] == "1"
    for step in CPU_STEPS:
        assert "accelerator" not in resources(spec, step), step
        placement = k8s.get(f"exec-{step}", {})
        assert "nodeSelector" not in placement and "tolerations" not in placement


def test_gpu_pool_defaults_come_from_the_config(paper_pipeline: tuple[dict, dict]) -> None:
    spec, _ = paper_pipeline
    params = spec["root"]["inputDefinitions"]["parameters"]
    config = load_config("llava15_7b")
    assert params["gpu_node_selector"]["defaultValue"] == config.pipeline.gpu_node_selector
    assert params["gpu_tolerations"]["defaultValue"] == config.pipeline.gpu_tolerations
    assert resources(spec, "train")["resourceMemoryLimit"] == config.pipeline.resources["train"].memory


def test_gpu_steps_get_a_memory_backed_dev_shm(paper_pipeline: tuple[dict, dict]) -> None:
    _, k8s = paper_pipeline
    for step in GPU_STEPS:
        assert k8s[f"exec-{step}"]["emptyDirMounts"] == [
            {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "16Gi", "volumeName": "dshm"}], step


def test_credentials_come_from_secrets_as_env(paper_pipeline: tuple[dict, dict]) -> None:
    _, k8s = paper_pipeline
    for step in (*GPU_STEPS, "ingest", "register"):
        by_secret = {s["secretName"]: s for s in k8s[f"exec-{step}"]["secretAsEnv"]}
        assert set(by_secret) == {"damo-s3-credentials", "damo-mlflow-credentials"}, step
        s3 = by_secret["damo-s3-credentials"]
        assert {m["envVar"] for m in s3["keyToEnv"]} == set(S3_SECRET_KEYS) and s3["optional"] is False
        mlflow = by_secret["damo-mlflow-credentials"]
        assert {m["envVar"] for m in mlflow["keyToEnv"]} == set(MLFLOW_SECRET_KEYS)
    assert "secretAsEnv" not in k8s.get("exec-configure", {}), "configure only validates text"


def test_caching_for_data_steps_only_and_retries_everywhere(paper_pipeline: tuple[dict, dict]) -> None:
    spec, _ = paper_pipeline
    tasks = spec["root"]["dag"]["tasks"]
    for step in ("ingest", "score", "reference"):
        assert tasks[step]["cachingOptions"] == {"enableCache": True}, step
    for step in ("configure", "train", "evaluate", "register"):
        assert tasks[step]["cachingOptions"] == {}, step  # KFP's "off"
    for step, task in tasks.items():
        retry = task["retryPolicy"]
        assert retry["maxRetryCount"] == 2 and retry["backoffDuration"] == "120s", step


def test_ui_parameters_default_to_the_config(paper_pipeline: tuple[dict, dict]) -> None:
    spec, _ = paper_pipeline
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config", "source", "base_model", *RUN_PARAMETERS}
    config = load_config("llava15_7b", [f"pipeline.image={EXAMPLE_IMAGE}"])
    assert config_from_yaml(params["config"]["defaultValue"]) == config
    assert params["base_model"]["defaultValue"] == "llava-hf/llava-1.5-7b-hf"
    assert params["arm"]["defaultValue"] == "dama" and params["beta"]["defaultValue"] == 0.1
    assert params["gate"]["defaultValue"] == {"object_halbench.chair_response": "min",
                                              "llava_bench.relative_score": "max"}
    assert params["gpus"]["defaultValue"] == 4


def test_every_task_runs_the_configured_image(paper_pipeline: tuple[dict, dict]) -> None:
    spec, _ = paper_pipeline
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {EXAMPLE_IMAGE}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert config_from_yaml(params["config"]["defaultValue"]).pipeline.image == EXAMPLE_IMAGE  # TrainJob's


def test_a_pipeline_without_an_image_is_not_built(tmp_path: Path) -> None:
    from pipelines import compile_pipeline

    with pytest.raises(ConfigError, match="pipeline.image is unset"):
        compile_pipeline(load_config("llava15_7b"), tmp_path / "p.yaml")


def test_multi_node_layout_runs_a_trainjob_on_the_shared_workspace(compile_preset: Any) -> None:
    spec, k8s = compile_preset("llava15_7b", "pipeline.num_nodes=4")
    tasks = spec["root"]["dag"]["tasks"]
    assert "train" not in tasks and tasks["train-multinode"]["taskInfo"]["name"] == "train"
    assert {"train-multinode", "configure"} <= set(tasks["evaluate"]["dependentTasks"])
    # the KFP task only submits and waits: no GPU; the TrainJob's nodes hold them
    assert "accelerator" not in resources(spec, "train-multinode")
    assert k8s["exec-train-multinode"]["pvcMount"][0]["mountPath"] == "/workspace"
    assert k8s["exec-train-multinode"]["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == (
        "damo-workspace")


SECRET_VALUES = {"AWS_SECRET_ACCESS_KEY": "s3-secret-must-not-leak",
                 "AWS_ACCESS_KEY_ID": "AKIAMUSTNOTLEAK00000",
                 "MLFLOW_TRACKING_PASSWORD": "mlflow-password-must-not-leak",
                 "KFP_TOKEN": "kfp-token-must-not-leak"}


def test_no_credential_reaches_the_compiled_pipeline(compile_preset: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    spec, k8s = compile_preset("llava15_7b")
    text = (tmp_path / "pipeline.yaml").read_text()
    for value in SECRET_VALUES.values():
        assert value not in text
    # secrets are referenced by name and key only
    for executor in k8s.values():
        for ref in executor.get("secretAsEnv", []):
            assert set(ref) <= {"secretName", "secretNameParameter", "keyToEnv", "optional"}
    assert "password" not in json.dumps(spec["root"]["inputDefinitions"]).lower()


GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "dama_pipeline.yaml"


def test_golden_pipeline_is_current(tmp_path: Path) -> None:
    """The committed golden file equals a fresh compile (regenerate: python -m pipelines.golden)."""
    from pipelines import compile_pipeline
    from pipelines.golden import golden_config

    fresh = list(yaml.safe_load_all(compile_pipeline(golden_config(), tmp_path / "p.yaml").read_text()))
    golden = list(yaml.safe_load_all(GOLDEN.read_text()))
    assert fresh == golden, "the compiled pipeline changed: review it, then run `python -m pipelines.golden`"


def test_golden_pipeline_loads_back_as_a_component() -> None:
    from kfp import components

    loaded = components.load_component_from_file(str(GOLDEN))
    assert loaded.platform_spec.platforms["kubernetes"]
    assert set(loaded.component_spec.outputs) == {"registered", "evaluated"}


def test_a_resource_override_changes_only_its_field(compile_preset: Any) -> None:
    spec, _ = compile_preset("llava15_7b", "pipeline.resources.train.memory=128Gi",
                             "pipeline.resources.score.cpu=4")
    assert resources(spec, "train")["resourceMemoryLimit"] == "128Gi"
    assert resources(spec, "train")["resourceCpuRequest"] == "32"  # the default kept
    assert resources(spec, "score")["resourceCpuRequest"] == "4"
    assert resources(spec, "reference")["resourceMemoryLimit"] == "64Gi"
    with pytest.raises(ConfigError, match=r"unknown steps \['trian'\]"):
        load_config("llava15_7b", ["pipeline.resources.trian.cpu=4"])
