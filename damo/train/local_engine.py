"""The one-process engine: what DeepSpeed's engine does for one fp32 rank, in plain torch.

At one process DeepSpeed partitions nothing, reduces nothing and keeps no master copy (fp32), so all
it would add is itself: importing it pulls in its autotuner, which imports MLflow and pandas (the
tiny model's training peak fell from 957 to 898 MiB without it, ``benchmarks/train_vs_trl.md``), and
its step runs bookkeeping the loop never reads. :class:`LocalEngine` keeps the surface the loop and
the checkpoints use — call, ``backward``, ``step``, ``get_lr``, ``module``,
``save_checkpoint``/``load_checkpoint``, ``zero_optimization_stage`` — with DeepSpeed's semantics,
so a run computes the same numbers either way:

1. ``backward`` divides the loss by the gradient-accumulation count (DeepSpeed's ``scale_wrt_gas``).
2. ``step`` is called after every micro-batch and steps the optimizer only at an accumulation
   boundary: clip by the global L2 norm (DeepSpeed's formula: per-gradient norms, summed squares,
   ``min(1, max_norm / (norm + 1e-6))``), the optimizer step at the scheduled lr, gradients set to
   ``None`` (freed, so the next backward allocates them while the forward's activations are released).
   Without clipping or accumulation the step can instead run inside the backward, per parameter
   (``in_backward``, below), so that all the gradients never exist at once.
3. A checkpoint is one ``engine_state.pt`` per tag: weights, optimizer, schedule, counters and the
   client state, written to a temporary name and renamed (a kill mid-write leaves no file that looks
   complete; :mod:`damo.train.checkpoint` adds its own completion marker on top).

bf16 training keeps DeepSpeed even at one process (its optimizer holds fp32 master weights), and any
run across ranks uses DeepSpeed as configured (:func:`damo.train.engine.plan`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from damo.errors import DamoError

STATE_FILE = "engine_state.pt"
NORM_EPS = 1e-6  # DeepSpeed's (and torch's) guard in the clip coefficient


class CheckpointLayoutError(DamoError, RuntimeError):
    """A checkpoint folder holds no one-process engine state (saved by another layout?)."""


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale the gradients in place so their global L2 norm is at most ``max_norm``; the norm before.

    The same arithmetic as DeepSpeed's ``clip_grad_norm_`` at one rank (each gradient's norm in fp32,
    squares summed, the root taken; the coefficient clamped at 1 and always applied)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch.stack([g.detach().float().norm(2) for g in grads])
    total = norms.pow(2).sum().pow(0.5)
    coefficient = torch.clamp(max_norm / (total + NORM_EPS), max=1.0)
    torch._foreach_mul_(grads, coefficient.to(grads[0].dtype))
    return total


class LocalEngine:
    """One process, plain torch: see the module docstring for what it keeps of DeepSpeed's engine.

    ``optimizers``: one AdamW over every trainable parameter, or — ``in_backward`` — one per parameter,
    each stepped by a hook the moment backward has finished that parameter's gradient, which is then
    freed: the gradients never all exist at once (torchtune's optimizer-in-backward). That is only the
    same update when nothing needs every gradient first: no clipping (a global norm) and no
    accumulation (:func:`damo.train.engine.plan` decides). ``lr_factor(step)`` scales each optimizer's
    base lr at optimizer step ``step``, as ``LambdaLR`` would.
    """

    def __init__(self, module: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
                 lr_factor: Callable[[int], float], gradient_accumulation_steps: int,
                 max_grad_norm: float | None, in_backward: bool = False) -> None:
        if in_backward and (max_grad_norm or gradient_accumulation_steps > 1):
            raise ValueError("an optimizer step in backward needs no clipping and no gradient accumulation")
        self.module = module
        self.optimizers = optimizers
        self.base_lrs = [float(o.param_groups[0]["lr"]) for o in optimizers]
        self.lr_factor = lr_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.trainable = [p for o in optimizers for group in o.param_groups for p in group["params"]]
        self.micro_steps = 0
        self.global_steps = 0
        if in_backward:
            for optimizer in optimizers:
                for param in optimizer.param_groups[0]["params"]:
                    param.register_post_accumulate_grad_hook(self._step_in_backward(optimizer))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def zero_optimization_stage(self) -> int:
        return 0

    def get_lr(self) -> list[float]:
        """The lr of the next optimizer step (what DeepSpeed's engine reports after a step)."""
        return [self.base_lrs[0] * self.lr_factor(self.global_steps)]

    def _set_lr(self, optimizer: torch.optim.Optimizer, base: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = base * self.lr_factor(self.global_steps)

    def _step_in_backward(self, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
        base = float(optimizer.param_groups[0]["lr"])

        def step(param: torch.Tensor) -> None:
            self._set_lr(optimizer, base)
            optimizer.step()
            param.grad = None  # freed now, not at the end of the step

        return step

    def backward(self, loss: torch.Tensor) -> None:
        scaled = loss / self.gradient_accumulation_steps if self.gradient_accumulation_steps > 1 else loss
        scaled.backward()

    def step(self) -> None:
        self.micro_steps += 1
        if self.micro_steps % self.gradient_accumulation_steps:
            return
        if self.max_grad_norm:
            clip_grad_norm(self.trainable, self.max_grad_norm)
        for optimizer, base in zip(self.optimizers, self.base_lrs, strict=True):
            if any(p.grad is not None for group in optimizer.param_groups for p in group["params"]):
                self._set_lr(optimizer, base)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        self.global_steps += 1

    def release_optimizer_state(self) -> None:
        """Free Adam's two moments (and any gradient) once training is over and checkpointed.

        Saving the model needs only the weights, yet the model folder is written from a rebuilt copy of
        the policy (:func:`damo.train.results.save_model_folder`); with the moments still held, that
        copy made the save the run's peak: 7156 MiB against 4352 MiB without them, at 320M parameters
        (the width-2048 size of ``benchmarks/train_vs_trl.py``).
        """
        for optimizer in self.optimizers:
            optimizer.state.clear()
            optimizer.zero_grad(set_to_none=True)

    def _state(self, client_state: dict[str, Any]) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers],
                "micro_steps": self.micro_steps, "global_steps": self.global_steps,
                "client_state": client_state}

    def save_checkpoint(self, save_dir: str, tag: str, client_state: dict[str, Any]) -> None:
        folder = Path(save_dir) / tag
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{STATE_FILE}.partial"
        torch.save(self._state(client_state), partial)
        os.replace(partial, folder / STATE_FILE)

    def load_checkpoint(self, load_dir: str, tag: str) -> tuple[str, dict[str, Any]]:
        path = Path(load_dir) / tag / STATE_FILE
        if not path.is_file():
            raise CheckpointLayoutError(
                f"{path.parent}: no {STATE_FILE}: this checkpoint was not saved by a one-process fp32 run "
                "(a DeepSpeed layout: multi-process or bf16); resume it with the same layout")
        state = torch.load(path, map_location="cpu", weights_only=False)
        if len(state["optimizers"]) != len(self.optimizers):
            raise CheckpointLayoutError(
                f"{path.parent}: saved with {len(state['optimizers'])} optimizer(s), this run has "
                f"{len(self.optimizers)} (optimizer-in-backward switched since?); resume with the same "
                "train.max_grad_norm and batch sizes")
        self.module.load_state_dict(state["module"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        self.micro_steps, self.global_steps = int(state["micro_steps"]), int(state["global_steps"])
        return str(path.parent), dict(state["client_state"])
