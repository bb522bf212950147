"""The optimiser and loop both pre-trainings use: AdamW, linear warm-up, then cosine decay to zero.

Short runs (a few hundred steps) reach a much lower loss when the rate decays to zero at the end.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch

log = logging.getLogger(__name__)
LOG_EVERY = 50  # steps between progress lines: log volume only, not a tuning knob


def warmup_cosine(params: Iterable[torch.nn.Parameter], lr: float, steps: int, warmup_ratio: float
                  ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW at peak ``lr`` and its per-step schedule over ``steps`` steps."""
    optimizer = torch.optim.AdamW(params, lr=lr)
    warmup = max(1, round(warmup_ratio * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(model: torch.nn.Module, batch_loss: Callable[[], torch.Tensor], lr: float, steps: int,
        warmup_ratio: float, name: str) -> list[float]:
    """``steps`` AdamW steps of ``batch_loss()`` (which draws its own batch); returns the losses.

    The model is left in eval mode. ``name`` labels the progress lines ("sft", "clip").
    """
    optimizer, schedule = warmup_cosine(model.parameters(), lr, steps, warmup_ratio)
    model.train()
    losses: list[float] = []
    for step in range(steps):
        loss = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % LOG_EVERY == 0 or step == steps - 1:
            log.info("%s step %d/%d loss %.4f", name, step + 1, steps, losses[-1])
    model.eval()
    return losses
