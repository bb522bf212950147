"""Fixtures of the train/reference tests: a tiny LLaVA, a scored tiny dataset, its reference columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.config import DamoConfig, load_config
from tests.unit.train.tiny import build_tiny_llava, build_tiny_pairs

# Small, fast training settings on the tiny fixtures (one optimizer step = 4 pairs in 2 micro-steps).
FAST = ("train.global_batch_size=4", "train.micro_batch_size=2", "train.max_steps=4", "train.save_steps=2",
        "train.logging_steps=1", "train.learning_rate=1e-3", "train.zero_stage=2",
        "train.select.benchmark=null",  # the fixtures are no tiny world: no selection images
        "train.loss.rejected_tokens=all")  # DAMA's sum, not the demo preset's fork sum


def fast_config(*overrides: str) -> DamoConfig:
    return load_config("tiny", [*FAST, *overrides])


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pairs(tmp_path_factory.mktemp("tiny-pairs") / "data")


@pytest.fixture(scope="session")
def tiny_reference_pairs(tiny_pairs: Path, tiny_llava: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> Path:
    from damo.steps.reference import ReferencePaths, run

    out = tmp_path_factory.mktemp("tiny-ref") / "data"
    run(fast_config(), ReferencePaths(data=tiny_pairs, model=str(tiny_llava), out=out))
    return out
