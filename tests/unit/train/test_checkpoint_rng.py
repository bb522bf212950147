"""A checkpoint's RNG file restores every generator: draws after a restore repeat those after the save."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from damo.train import checkpoint


def draws() -> tuple[list[float], float, float]:
    return torch.rand(3).tolist(), random.random(), float(np.random.rand())


def test_restored_state_repeats_the_draws_that_followed_the_save():
    torch.manual_seed(1)
    state = checkpoint.rng_state()
    expected = draws()
    draws()  # move every generator on
    checkpoint.set_rng_state(state)
    assert draws() == expected


def test_resuming_a_gpu_checkpoint_without_cuda_says_the_gpu_draws_differ(caplog: pytest.LogCaptureFixture):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    state = {**checkpoint.rng_state(), "cuda": torch.zeros(16, dtype=torch.uint8)}
    with caplog.at_level(logging.WARNING, logger="damo.train.checkpoint"):
        checkpoint.set_rng_state(state)
    assert "GPU random draws differ" in caplog.text
