"""On a GPU the checkpoint's RNG file also restores this rank's CUDA generator."""

from __future__ import annotations

import pytest
import torch

from damo.device import choose_device
from damo.train import checkpoint

pytestmark = pytest.mark.gpu


def test_cuda_generator_is_restored():
    device = choose_device()
    state = checkpoint.rng_state()
    assert state["cuda"] is not None
    expected = torch.rand(4, device=device).tolist()
    torch.rand(4, device=device)
    checkpoint.set_rng_state(state)
    assert torch.rand(4, device=device).tolist() == expected
