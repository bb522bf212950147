"""Per-step training metrics from the loss outputs of the step's micro-batches (global batch values).

Rewards use the base β (DAMA.md §3); β statistics, α_M, R̄, kept and clamped counts describe the
per-sample temperature. Every value is identical on all ranks (computed from gathered vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from damo.loss import DamaLossOutput


@dataclass
class StepMetrics:
    """Accumulates the micro-steps of one optimizer step."""

    outputs: list[DamaLossOutput] = field(default_factory=list)
    pairs: int = 0
    tokens: float = 0.0

    def add(self, output: DamaLossOutput, pairs: int, tokens: float) -> None:
        self.outputs.append(output)
        self.pairs += pairs
        self.tokens += tokens

    def summary(self, seconds: float, lr: float) -> dict[str, float]:
        outs = self.outputs
        kept_losses = torch.cat([o.losses.detach()[o.keep_mask] for o in outs])
        chosen = torch.cat([o.chosen_rewards for o in outs])
        rejected = torch.cat([o.rejected_rewards for o in outs])
        beta = torch.cat([o.beta for o in outs])
        margin = chosen - rejected
        extras = {key: sum(o.extra[key] for o in outs) / len(outs) for key in outs[0].extra}
        return {
            **extras,
            "loss": float(kept_losses.mean()),
            "rewards/chosen": float(chosen.mean()),
            "rewards/rejected": float(rejected.mean()),
            "rewards/margin": float(margin.mean()),
            "rewards/accuracy": float((margin > 0).double().mean()),
            "beta/mean": float(beta.mean()),
            "beta/min": float(beta.min()),
            "beta/max": float(beta.max()),
            "alpha_d/mean": float(torch.cat([o.data_factor for o in outs]).double().mean()),
            "alpha_m": sum(o.model_factor for o in outs) / len(outs),
            "running_gap": outs[-1].running_mean,
            "kept": float(sum(o.num_kept for o in outs)),
            "clamped": float(sum(o.num_clamped for o in outs)),
            "pairs_per_s": self.pairs / max(seconds, 1e-9),
            "tokens_per_s": self.tokens / max(seconds, 1e-9),
            "lr": lr,
        }
