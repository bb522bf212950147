"""Compiled pipelines shared by this folder's tests (compiling takes ~0.1 s, parsing ~0.2 s)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from damo.config import load_config
from pipelines.golden import EXAMPLE_IMAGE

Docs = tuple[dict[str, Any], dict[str, Any]]


def compile_docs(tmp: Path, preset: str, overrides: tuple[str, ...] = ()) -> Docs:
    """(pipeline spec, kubernetes executors) of the pipeline compiled for a preset."""
    from pipelines import compile_pipeline

    config = load_config(preset, (f"pipeline.image={EXAMPLE_IMAGE}", *overrides))
    out = compile_pipeline(config, tmp / "pipeline.yaml")
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="session")
def paper_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Docs:
    return compile_docs(tmp_path_factory.mktemp("paper"), "llava15_7b")


@pytest.fixture
def compile_preset(tmp_path: Path) -> Callable[..., Docs]:
    """compile_preset(preset, *overrides) → the compiled pipeline's docs (file: tmp_path/pipeline.yaml)."""
    return lambda preset, *overrides: compile_docs(tmp_path, preset, overrides)
