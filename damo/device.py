"""The one module that chooses devices, dtypes and the distributed backend.

Nothing else in damo names a device: it asks here. CUDA when present, else the CPU (DeepSpeed's
CPU accelerator with gloo), so the same code runs on a laptop, this 2-core CI box and a GPU node.
"""

from __future__ import annotations

import os
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


def has_cuda() -> bool:
    return torch.cuda.is_available()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def choose_device() -> torch.device:
    """This process's device: its local GPU when CUDA is present, else the CPU."""
    if has_cuda():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return torch.device("cpu")


def choose_dtype(precision: Precision) -> torch.dtype:
    """``auto`` → bf16 on a GPU that supports it, fp32 elsewhere (CPU bf16 is slow, not wrong)."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if has_cuda() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


InferencePrecision = Literal["auto", "fp16", "bf16", "fp32"]
INFERENCE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), as oneDNN then does."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def inference_dtype(precision: InferencePrecision = "auto") -> torch.dtype:
    """For frozen encoders (CLIP scoring). ``auto``: fp16 on GPU; bf16 on a CPU with native bf16
    (on this project's AVX512-BF16 CI box the CLIP towers ran 2.5-3.5x faster than in fp32);
    fp32 on other CPUs, where bf16 is emulated and slower."""
    if precision != "auto":
        return INFERENCE_DTYPES[precision]
    if has_cuda():
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def dist_backend() -> str:
    return "nccl" if has_cuda() else "gloo"


def accelerator_name() -> str:
    """DeepSpeed's accelerator name; exported as DS_ACCELERATOR before deepspeed is imported."""
    return "cuda" if has_cuda() else "cpu"


def release_cached_memory() -> None:
    """Hand freed tensors' memory back: the garbage collector first (engines hold reference cycles),
    then the accelerator's caching allocator, so that the next model to load finds it free."""
    import gc

    gc.collect()
    if has_cuda():
        torch.cuda.empty_cache()
