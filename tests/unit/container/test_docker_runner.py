"""`damo run --runner docker`: what the containers see (only the pipeline root, at the same path),
as whom they run (never root), and which environment they get."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.config import ConfigError, DamoConfig, load_config
from damo.container.run import container_run_args, container_user, forwarded_env, mounted_config
from damo.steps.local_run import with_absolute_paths


def tiny(tmp: Path, *sets: str) -> DamoConfig:
    return with_absolute_paths(load_config("tiny", sets), tmp)


def test_the_tiny_world_moves_into_the_pipeline_root_with_its_clip(tmp_path: Path) -> None:
    config = tiny(tmp_path)
    assert config.score.clip_model == f"{tmp_path}/.damo/tiny-world/clip"
    mounted = mounted_config(config)
    root = tmp_path / ".damo" / "runs"
    assert mounted.pipeline.tiny_world_dir == str(root / "tiny-world")
    assert mounted.score.clip_model == str(root / "tiny-world" / "clip")
    assert config.pipeline.tiny_world_dir == f"{tmp_path}/.damo/tiny-world"  # the input is left alone


def test_a_tiny_world_already_under_the_root_stays(tmp_path: Path) -> None:
    config = tiny(tmp_path, "pipeline.tiny_world_dir=.damo/runs/w", "score.clip_model=.damo/runs/w/clip")
    mounted = mounted_config(config)
    assert mounted.pipeline.tiny_world_dir == f"{tmp_path}/.damo/runs/w"
    assert mounted.score.clip_model == f"{tmp_path}/.damo/runs/w/clip"


def test_local_inputs_outside_the_root_are_refused_by_name(tmp_path: Path) -> None:
    config = tiny(tmp_path, "pipeline.source=/srv/data/rlaif", "pipeline.base_model=s3://models/llava")
    with pytest.raises(ConfigError, match=r"pipeline.source /srv/data/rlaif, score.clip_model .*/clip lie"):
        mounted_config(config)


def test_a_root_next_to_slash_would_hide_the_image_and_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too close to /"):
        mounted_config(tiny(tmp_path, "pipeline.output_dir=/srv"))


@pytest.mark.parametrize(("host_uid", "image_user", "expected"), [
    (1000, "10001:0", "1000:0"),   # a user's outputs stay the user's
    (0, "10001:0", "10001:0"),     # root on the host never runs the steps as root
    (0, "10001", "10001:0"),
])
def test_containers_run_in_group_0_and_never_as_root(host_uid: int, image_user: str, expected: str) -> None:
    assert container_user(image_user, host_uid) == expected


@pytest.mark.parametrize("image_user", ["", "0", "root", "0:0"])
def test_an_image_without_a_non_root_user_is_refused(image_user: str) -> None:
    with pytest.raises(ConfigError, match="must name a non-root USER"):
        container_user(image_user, 0)


def test_only_the_stack_tracking_and_switches_are_forwarded() -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
           "DAMO_MLFLOW_PARENT_RUN_ID": "r", "DS_ACCELERATOR": "cpu", "HOME": "/root", "PATH": "/usr/bin",
           "TORCH_EXTENSIONS_DIR": "/host/cache"}
    assert forwarded_env(env) == {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_URI",
                                                       "DAMO_MLFLOW_PARENT_RUN_ID", "DS_ACCELERATOR")}


def test_the_runner_uses_the_host_network() -> None:
    args = container_run_args("10001:0")
    assert args["network_mode"] == "host" and args["user"].endswith(":0")
