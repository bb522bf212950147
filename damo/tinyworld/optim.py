"""The optimiser both pre-trainings use: AdamW with linear warm-up, then cosine decay to zero.

Short runs (a few hundred steps) reach a much lower loss when the rate decays to zero at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


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
