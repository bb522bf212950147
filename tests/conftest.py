"""Shared test set-up: offline, loopback only, CPU DeepSpeed, GPU tests skipped without CUDA."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
# NLTK data (WordNet) for the official CHAIR/AMBER matching: scripts/install_nltk_data.sh fills it.
os.environ.setdefault("DAMO_NLTK_DATA", str(ROOT / ".cache" / "nltk_data"))
os.environ.pop("MLFLOW_TRACKING_URI", None)  # a developer's server must never receive test runs

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"test tried to reach {address!r}: tests are offline and loopback-only")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu tier)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- the tiny world
# Overrides that make the untrained world small and quick (seconds): for fixtures of other parts.
TINY_WORLD_QUICK = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
                    "tiny_world.eval_images=8", "tiny_world.selection_images=8")


@pytest.fixture(scope="session")
def tiny_world() -> Path:
    """A fully built, pre-trained tiny world (``tiny`` preset), built once per machine and cached."""
    from damo.config import load_config
    from damo.tinyworld.cache import cached_world

    return cached_world(load_config("tiny"), ROOT / ".cache" / "tiny-world")


@pytest.fixture(scope="session")
def tiny_world_quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained tiny world (64 pairs, random policy and CLIP), built in seconds."""
    from damo.config import load_config
    from damo.tinyworld import build

    out = tmp_path_factory.mktemp("tiny-world-quick") / "world"
    build(load_config("tiny", TINY_WORLD_QUICK), out)
    return out
