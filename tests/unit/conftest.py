"""Fixtures shared by the unit tiers: an MLflow sqlite store (no server) for tracking tests."""

from __future__ import annotations

import pytest

from damo.tracking import PARENT_RUN_ENV
from damo.tracking import client as tracking_client


@pytest.fixture(scope="session")
def _sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"  # one store per session: its schema migration takes seconds
    # artifacts under the temporary folder, not ./mlruns in the repository
    tracking_client(uri).create_experiment("unit", artifact_location=(folder / "artifacts").as_uri())
    return uri


@pytest.fixture
def sqlite_uri(_sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    return _sqlite_store
