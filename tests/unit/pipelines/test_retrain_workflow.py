"""The scheduled-retraining CI workflow: compiles and submits on a cron, credentials only from the CI
secret store (never literal), the token passed through the environment, not the command line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[3] / ".github" / "workflows" / "retrain.yml"


def test_retrain_workflow_compiles_and_submits_on_a_cron() -> None:
    text = WORKFLOW.read_text()
    flow = yaml.safe_load(text)
    triggers = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5 and "workflow_dispatch" in triggers
    (job,) = flow["jobs"].values()
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "damo compile" in runs and "damo submit" in runs and "--host" in runs
    assert job["env"]["KFP_TOKEN"] == "${{ secrets.KFP_TOKEN }}"
    assert "KFP_TOKEN" not in runs, "the token reaches damo through the environment only"
    assert flow["permissions"] == {"contents": "read"}


def test_no_literal_credential_in_the_workflow() -> None:
    for line in WORKFLOW.read_text().splitlines():
        if re.search(r"(TOKEN|PASSWORD|SECRET|ACCESS_KEY)\w*\s*:", line):
            assert "${{ secrets." in line, line
