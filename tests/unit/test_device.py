"""The one module that picks dtypes: inference precision for the frozen CLIP towers."""

from __future__ import annotations

import pytest
import torch

from damo import device


@pytest.mark.parametrize(
    ("cuda", "native_bf16", "expected"),
    [
        (True, False, torch.float16),  # half precision on GPU
        (False, True, torch.bfloat16),  # a CPU that multiplies bf16 in hardware
        (False, False, torch.float32),  # elsewhere bf16 is emulated: slower than fp32
    ],
)
def test_auto_inference_dtype(monkeypatch: pytest.MonkeyPatch, cuda: bool, native_bf16: bool, expected):
    monkeypatch.setattr(device, "has_cuda", lambda: cuda)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native_bf16)
    assert device.inference_dtype("auto") == expected


@pytest.mark.parametrize(
    ("name", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)]
)
def test_explicit_inference_precision_wins(monkeypatch: pytest.MonkeyPatch, name: str, dtype: torch.dtype):
    monkeypatch.setattr(device, "has_cuda", lambda: True)
    assert device.inference_dtype(name) == dtype  # type: ignore[arg-type]


def test_native_bf16_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": True})
    assert device.cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    assert not device.cpu_has_native_bf16()
