"""The forge's CI workflows, checked statically: scheduled retraining builds and pushes the image,
compiles naming the pushed digest and submits; a version tag builds and pushes; credentials only
from the CI secret store (never literal), passed through the environment, never on a command line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"
BUILD = r"damo image build --push \"\$REGISTRY\""


def load(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    flow = yaml.safe_load((WORKFLOWS / name).read_text())
    (job,) = flow["jobs"].values()
    return flow, job["steps"]


def step_index(steps: list[dict[str, Any]], pattern: str) -> int:
    (index,) = [i for i, s in enumerate(steps) if re.search(pattern, s.get("run", ""))]
    return index


def test_retrain_builds_pushes_compiles_with_the_pushed_digest_and_submits_on_a_cron() -> None:
    flow, steps = load("retrain.yml")
    triggers = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5 and "workflow_dispatch" in triggers
    login, build = step_index(steps, r"docker login"), step_index(steps, BUILD)
    compile_, submit = step_index(steps, r"damo compile"), step_index(steps, r"damo submit")
    assert login < build < compile_ < submit
    assert "IMAGE=$(jq -r .image image.json)" in steps[build]["run"]  # the printed, pinned reference
    for i in (compile_, submit):
        assert '--set "pipeline.image=$IMAGE"' in steps[i]["run"]
    assert "--host" in steps[submit]["run"]
    (job,) = flow["jobs"].values()
    assert job["env"]["KFP_TOKEN"] == "${{ secrets.KFP_TOKEN }}"
    assert flow["permissions"] == {"contents": "read"}


def test_release_builds_and_pushes_on_a_version_tag() -> None:
    flow, steps = load("release.yml")
    assert flow[True] == {"push": {"tags": ["v*"]}}
    assert step_index(steps, r"docker login") < step_index(steps, BUILD)
    push = steps[step_index(steps, "docker push")]["run"]
    assert re.search(r"docker push \"\$REGISTRY/damo:\$\{GITHUB_REF_NAME\}\"", push)
    assert flow["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", ["retrain.yml", "release.yml"])
def test_registry_credentials_come_from_secrets_and_reach_docker_on_stdin(name: str) -> None:
    _, steps = load(name)
    (login,) = [s for s in steps if "docker login" in s.get("run", "")]
    assert login["env"] == {"REGISTRY_USERNAME": "${{ secrets.DAMO_REGISTRY_USERNAME }}",
                            "REGISTRY_PASSWORD": "${{ secrets.DAMO_REGISTRY_PASSWORD }}"}
    assert "--password-stdin" in login["run"] and "--password " not in login["run"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "KFP_TOKEN" not in runs, "the token reaches damo through the environment only"


@pytest.mark.parametrize("name", ["retrain.yml", "release.yml"])
def test_no_literal_credential_in_the_workflow(name: str) -> None:
    for line in (WORKFLOWS / name).read_text().splitlines():
        if re.search(r"(TOKEN|PASSWORD|SECRET|ACCESS_KEY)\w*\s*:", line):
            assert "${{ secrets." in line, line
