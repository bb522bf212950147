"""DeepSpeed around the policy: the process group, the DS config from the presets, the engine.

The ZeRO presets ship as package data (``configs/deepspeed/zero2.json``, ``zero3.json``); batch sizes,
gradient accumulation, clipping and bf16 are filled in from ``train``. The optimizer is a client torch
AdamW (no JIT-built fused/CPU Adam op), the lr schedule a client ``LambdaLR`` that DeepSpeed steps and
checkpoints.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
import math
import os
import socket
from collections.abc import Callable
from typing import Any

import torch

from damo import device
from damo.config import TrainConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def init_distributed() -> tuple[int, int]:
    """Join (or, in a plain single process, create) the process group; returns (rank, world_size).

    A launcher (torchrun, the deepspeed launcher, a Kubeflow job) sets RANK/WORLD_SIZE/MASTER_*; a
    single process started any other way (the CLI, a test) gets a one-rank group on loopback.
    """
    os.environ.setdefault("DS_ACCELERATOR", device.accelerator_name())
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        if "RANK" in os.environ:
            deepspeed.init_distributed(dist_backend=device.dist_backend())
        else:
            # Set only for the init: left in os.environ they would make every subprocess this process
            # starts (a `damo train` under test, the workers of a launch) join this one-rank group.
            # LOCAL_RANK stays: DeepSpeed's engine reads it, and no launcher trusts an inherited one.
            os.environ.setdefault("LOCAL_RANK", "0")
            lone = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": LOOPBACK, "MASTER_PORT": str(_free_port())}
            os.environ.update(lone)
            try:
                deepspeed.init_distributed(dist_backend=device.dist_backend())
            finally:
                for key in lone:
                    os.environ.pop(key, None)
    return dist.get_rank(), dist.get_world_size()


def deepspeed_config(config: TrainConfig, world_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """The DS config: the ZeRO preset for ``zero_stage`` with batches, clipping and precision filled in."""
    preset = "zero3.json" if config.zero_stage == 3 else "zero2.json"
    text = (importlib.resources.files("configs") / "deepspeed" / preset).read_text()
    ds = json.loads(text)
    ds["zero_optimization"]["stage"] = config.zero_stage
    gas = config.global_batch_size // (config.micro_batch_size * world_size)
    ds.update(train_batch_size=config.global_batch_size,
              train_micro_batch_size_per_gpu=config.micro_batch_size,
              gradient_accumulation_steps=gas, gradient_clipping=config.max_grad_norm,
              bf16={"enabled": dtype == torch.bfloat16})
    return ds


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base lr at optimizer step ``s``: linear warmup, then the chosen decay."""
    warmup = math.ceil(config.warmup_ratio * total_steps)
    decay_steps = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / decay_steps, 1.0)
        if config.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.lr_schedule == "linear":
            return 1.0 - progress
        return 1.0

    return factor


def build_engine(module: torch.nn.Module, config: TrainConfig, world_size: int, dtype: torch.dtype,
                 total_steps: int) -> Any:
    """``deepspeed.initialize`` with a client AdamW over the trainable parameters and the lr schedule."""
    import deepspeed

    trainable = [p for p in module.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the policy has no trainable parameters (everything frozen?)")
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = lr_lambda(config, total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=module, optimizer=optimizer, config=copy.deepcopy(deepspeed_config(config, world_size, dtype)),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
    )
    return engine


def gather_vector(local: torch.Tensor) -> list[torch.Tensor]:
    """Detached copies of every rank's (n,) ``local`` tensor (same n on every rank), rank order."""
    import torch.distributed as dist

    world = dist.get_world_size()
    if world == 1:
        return [local.detach()]
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.detach().contiguous())
    return parts


def with_local(parts: list[torch.Tensor], local: torch.Tensor, rank: int) -> torch.Tensor:
    """The global (world × n,) vector: detached gathered parts, this rank's slice the autograd one."""
    return torch.cat([local if i == rank else p for i, p in enumerate(parts)])


def all_reduce_sum(value: float, dev: torch.device) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=dev)
    if dist.get_world_size() > 1:
        dist.all_reduce(t)
    return float(t.item())
