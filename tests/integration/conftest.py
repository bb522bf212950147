"""Integration fixtures: one real SeaweedFS + MLflow server stack for the whole test session.

- ``stack_config``: a :class:`DamoConfig` whose ``stack`` section points at a temporary state dir
  with free loopback ports (chosen at ``up``), and whose ``tracking.experiment`` is ``damo-tests``.
- ``stack``: the running stack's :class:`damo.stack.StackEnv` (started once, stopped at the end:
  ``down`` signals exactly the process groups ``up`` recorded).
- ``stack_environ``: per test, the client environment (MLflow URI, S3 endpoint and credentials)
  exported with monkeypatch, so code under test finds the stack as a user's shell would.

Tests of other parts (the local pipeline run) reuse these: take ``stack_environ`` and, if a config is
needed, ``stack_config``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from damo import stack as damo_stack
from damo.config import DamoConfig, load_config


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> DamoConfig:
    state_dir = tmp_path_factory.mktemp("stack")
    return load_config("tiny", [f"stack.state_dir={state_dir}", "stack.s3_port=0", "stack.mlflow_port=0",
                                "tracking.experiment=damo-tests"])


@pytest.fixture(scope="session")
def stack(stack_config: DamoConfig) -> Iterator[damo_stack.StackEnv]:
    env = damo_stack.up(stack_config)
    try:
        yield env
    finally:
        damo_stack.down(stack_config)


@pytest.fixture
def stack_environ(stack: damo_stack.StackEnv, monkeypatch: pytest.MonkeyPatch) -> damo_stack.StackEnv:
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    return stack
