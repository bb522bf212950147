"""The training engine around the policy: the process group, the layout, DeepSpeed's config, the engine.

The ZeRO presets ship as package data (``configs/deepspeed/zero2.json``, ``zero3.json``); batch sizes,
gradient accumulation, clipping and bf16 are filled in from ``train``. The optimizer is a client torch
AdamW (no JIT-built DeepSpeed Adam op; torch's fused kernel where the device has one), the lr schedule
a client ``LambdaLR`` that the engine steps and checkpoints.

The layout follows the world size (:func:`plan`). Across ranks: DeepSpeed, ZeRO at
``train.zero_stage``, gradients all-reduced. At one process nothing that only pays off across ranks:
ZeRO partitions over ranks, so at one rank stage 1-3 only add an fp32 copy of the weights,
200M-element gradient buckets and copies into them; the all-reduce of a one-rank group is a flatten,
an identity and a copy back of every gradient; and DeepSpeed itself, imported, costs resident
memory (its autotuner imports MLflow and pandas: ~60 MiB of the tiny model's training peak).
One fp32 process therefore trains on :class:`~damo.train.local_engine.LocalEngine` (plain torch,
DeepSpeed's stage-0 arithmetic); a bf16 one on DeepSpeed at stage 0 with the all-reduce switched off
(the one-rank mean is the identity). The chosen layout is logged with the run (``plan``).
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
from dataclasses import dataclass
from typing import Any

import torch

from damo import device
from damo.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def init_distributed() -> tuple[int, int]:
    """Join (or, in a plain single process, create) the process group; returns (rank, world_size).

    A launcher (torchrun, the deepspeed launcher, a Kubeflow job) sets RANK/WORLD_SIZE/MASTER_*: the
    ranks join through DeepSpeed, which trains them. A single process started any other way (the CLI,
    a test) gets a one-rank group on loopback from torch alone: importing DeepSpeed there would cost
    its memory for nothing when the one-process engine trains (:func:`plan`); should DeepSpeed train
    it after all (bf16), ``deepspeed.initialize`` adopts this group.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        if "RANK" in os.environ:
            _deepspeed().init_distributed(dist_backend=device.dist_backend())
        else:
            # Explicit rank/size/address rather than the environment: set there they would make every
            # subprocess this process starts (a `damo train` under test, the workers of a launch) join
            # this one-rank group. LOCAL_RANK stays: DeepSpeed's engine reads it.
            os.environ.setdefault("LOCAL_RANK", "0")
            dist.init_process_group(device.dist_backend(), init_method=f"tcp://{LOOPBACK}:{_free_port()}",
                                    rank=0, world_size=1)
    return dist.get_rank(), dist.get_world_size()


def _deepspeed() -> Any:
    """DeepSpeed, imported only when it trains (its accelerator named first, as it requires)."""
    os.environ.setdefault("DS_ACCELERATOR", device.accelerator_name())
    import deepspeed

    return deepspeed


# The shipped preset each ZeRO stage starts from (stage 0 and 1 use stage 2's, without partitioning).
PRESETS = {0: "zero2.json", 1: "zero2.json", 2: "zero2.json", 3: "zero3.json"}


@dataclass(frozen=True)
class Plan:
    """How this run trains: the engine, the ZeRO stage in effect, whether gradients are all-reduced,
    the optimizer, and whether the policy runs each pair's prompt once (:mod:`damo.train.logps`).

    ``prompt_once`` is off exactly when the optimizer steps in backward. The prompt-once path runs
    every weight twice per step, once over the prompts and once over the responses, so backward
    reaches each weight twice, and autograd holds the first contribution until the second arrives.
    Every weight's partial gradient then exists at once, which is all that stepping in backward saves:
    at 320M parameters, 6502 MiB peak against 5441 MiB on full sequences
    (``benchmarks/train_vs_trl.md``, "Freeing gradients in backward needs each weight used once").
    """

    world_size: int
    engine: str  # "torch" (damo.train.local_engine, one fp32 process) or "deepspeed"
    zero_stage: int
    gradient_allreduce: bool
    fused_adamw: bool
    optimizer_in_backward: bool

    @property
    def prompt_once(self) -> bool:
        return not self.optimizer_in_backward

    def params(self) -> dict[str, Any]:
        """The run's logged view of the layout (MLflow params, ``result.json``)."""
        return {"train.world_size": self.world_size, "train.engine": self.engine,
                "train.zero_stage_in_effect": self.zero_stage,
                "train.gradient_allreduce": self.gradient_allreduce,
                "train.optimizer": "torch AdamW (fused)" if self.fused_adamw else "torch AdamW",
                "train.optimizer_in_backward": self.optimizer_in_backward,
                "train.prompt_once": self.prompt_once}


def fused_adamw_supported(dev: torch.device) -> bool:
    """torch ships a fused AdamW kernel for these device types (one pass over all tensors)."""
    return dev.type in {"cpu", "cuda"}


def plan(config: TrainConfig, world_size: int) -> Plan:
    """ZeRO as configured across ranks; at one process stage 0 and no all-reduce (see module doc), on
    the plain-torch engine unless bf16 needs DeepSpeed's fp32 master weights."""
    many = world_size > 1
    engine = "deepspeed" if many or device.choose_dtype(config.precision) != torch.float32 else "torch"
    accumulates = config.global_batch_size > config.micro_batch_size * world_size
    return Plan(world_size=world_size, engine=engine, zero_stage=config.zero_stage if many else 0,
                gradient_allreduce=many, fused_adamw=fused_adamw_supported(device.choose_device()),
                optimizer_in_backward=engine == "torch" and config.max_grad_norm is None and not accumulates)


def deepspeed_config(config: TrainConfig, world_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """The DS config: the ZeRO preset for the stage in effect with batches, clipping, precision filled in."""
    stage = plan(config, world_size).zero_stage
    ds = json.loads((importlib.resources.files("configs") / "deepspeed" / PRESETS[stage]).read_text())
    ds["zero_optimization"] = {**ds["zero_optimization"], "stage": stage} if stage else {"stage": 0}
    gas = config.global_batch_size // (config.micro_batch_size * world_size)
    ds.update(train_batch_size=config.global_batch_size,
              train_micro_batch_size_per_gpu=config.micro_batch_size,
              gradient_accumulation_steps=gas, gradient_clipping=config.max_grad_norm or 0.0,
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
    """The :func:`plan`'s engine with a client AdamW over the trainable parameters and the lr schedule:
    :class:`~damo.train.local_engine.LocalEngine` at one fp32 process, else ``deepspeed.initialize``."""
    chosen = plan(config, world_size)
    trainable = [p for p in module.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the policy has no trainable parameters (everything frozen?): check train.lora and "
                          "train.freeze_vision_tower")
    def adamw(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                                 fused=chosen.fused_adamw or None)

    schedule = lr_lambda(config, total_steps)
    if chosen.engine == "torch":
        from damo.train.local_engine import LocalEngine

        optimizers = [adamw([p]) for p in trainable] if chosen.optimizer_in_backward else [adamw(trainable)]
        return LocalEngine(module, optimizers, schedule, config.global_batch_size // config.micro_batch_size,
                           config.max_grad_norm, in_backward=chosen.optimizer_in_backward)
    optimizer = adamw(trainable)
    engine, _, _, _ = _deepspeed().initialize(
        model=module, optimizer=optimizer, config=copy.deepcopy(deepspeed_config(config, world_size, dtype)),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
    )
    # DeepSpeed's own switch for its backward all-reduce; off, one rank keeps its gradients in place.
    engine.enable_backward_allreduce = chosen.gradient_allreduce
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
