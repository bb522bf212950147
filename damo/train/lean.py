"""Activation-lean training forwards for the language model's MLP and RMSNorm blocks.

A training step keeps, until the backward, every tensor autograd saved in the forward; for a small
batch these activations are the largest memory after the weights and Adam's moments. Two blocks of a
Llama-family decoder save more than their backward needs:

- **The SwiGLU MLP**, ``down(silu(gate(x)) * up(x))``, saves ``gate(x)`` (for SiLU), ``silu(gate(x))``
  and ``up(x)`` (for the product) and the product (for ``down``): four intermediate-width tensors per
  token. :class:`SwiGLUDown` saves only ``gate(x)`` and ``up(x)`` and recomputes the other two in the
  backward: two elementwise ops, against two matmuls already there.
- **RMSNorm**, ``w * (x * rsqrt(mean(x²) + eps))``, saves ``x`` and the normalised ``x`` (two
  hidden-width tensors). :class:`RMSNormLean` saves ``x`` and the per-token ``rsqrt``.

For the tiny world's shape (intermediate = 2 × hidden) that is 6 of the ~17 hidden-widths a decoder
layer saves per token. The forward values are bit for bit those of the stock modules; the gradients
are the same math in a different order of floating-point operations (agreement to ~1e-6 relative,
tested against autograd through the stock modules).

Which modules get a lean forward is a table (:data:`LEAN_FORWARDS`) keyed by the module's class;
anything else — LoRA-wrapped projections, a bias, another activation — keeps its stock forward.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class SwiGLUDown(torch.autograd.Function):
    """``down(silu(gate) * up)``: saves ``gate`` and ``up`` (and the weight), recomputes the rest.

    Shapes: ``gate``, ``up`` (..., I); ``weight`` (H, I); returns (..., H)."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up, weight)
        return F.linear(F.silu(gate) * up, weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gate, up, weight = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        act = gate * sig  # silu(gate), recomputed
        hidden = act * up
        grad_weight = grad.reshape(-1, grad.shape[-1]).t().mm(hidden.reshape(-1, hidden.shape[-1]))
        grad_hidden = grad.matmul(weight)
        grad_up = grad_hidden * act
        # d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g)))
        grad_gate = grad_hidden * up * sig * (1 + gate * (1 - sig))
        return grad_gate, grad_up, grad_weight


class RMSNormLean(torch.autograd.Function):
    """``weight * (x * rsqrt(mean(x², -1) + eps))`` in fp32: saves ``x`` and the per-token rsqrt.

    Shapes: ``x`` (..., H); ``weight`` (H,); returns (..., H) in ``x``'s dtype times ``weight``'s."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = x.to(torch.float32)
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return weight * (x32 * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, weight, rstd = ctx.saved_tensors
        x32 = x.to(torch.float32)
        normed = x32 * rstd
        grad_weight = (grad * normed.to(x.dtype)).reshape(-1, grad.shape[-1]).sum(0)
        grad_normed = (grad * weight).to(torch.float32)
        # d/dx of x·r(x) with r = (mean(x²) + eps)^(-1/2): r·g − x·r³·mean(g·x)
        grad_x = rstd * grad_normed - x32 * rstd.pow(3) * (grad_normed * x32).mean(-1, keepdim=True)
        return grad_x.to(x.dtype), grad_weight.to(weight.dtype), None


def _plain_linear(module: Any) -> bool:
    return type(module) is torch.nn.Linear and module.bias is None


def _lean_mlp(module: torch.nn.Module) -> Callable[..., torch.Tensor] | None:
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    if not all(_plain_linear(p) for p in parts) or type(getattr(module, "act_fn", None)).__name__ not in {
            "SiLU", "SiLUActivation"}:
        return None
    return _mlp_forward


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    return SwiGLUDown.apply(self.gate_proj(x), self.up_proj(x), self.down_proj.weight)


def _lean_rmsnorm(module: torch.nn.Module) -> Callable[..., torch.Tensor] | None:
    if not isinstance(getattr(module, "weight", None), torch.nn.Parameter):
        return None
    return _rmsnorm_forward if isinstance(getattr(module, "variance_epsilon", None), float) else None


def _rmsnorm_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    return RMSNormLean.apply(x, self.weight, self.variance_epsilon)


# Module class name → builder of its lean forward (None where the instance does not fit). Only
# classes whose stock forward is exactly the formula above: Gemma's RMSNorm (1 + w) is not here.
LEAN_FORWARDS: dict[str, Callable[[torch.nn.Module], Callable[..., torch.Tensor] | None]] = {
    "LlamaMLP": _lean_mlp,
    "MistralMLP": _lean_mlp,
    "Qwen2MLP": _lean_mlp,
    "LlamaRMSNorm": _lean_rmsnorm,
    "MistralRMSNorm": _lean_rmsnorm,
    "Qwen2RMSNorm": _lean_rmsnorm,
}


def make_lean(model: torch.nn.Module) -> dict[str, int]:
    """Give every module of a class in :data:`LEAN_FORWARDS` that fits its lean forward (in place);
    returns how many of each class were switched."""
    switched: dict[str, int] = {}
    for module in model.modules():
        builder = LEAN_FORWARDS.get(type(module).__name__)
        forward = builder(module) if builder else None
        if forward is not None:
            module.forward = types.MethodType(forward, module)
            switched[type(module).__name__] = switched.get(type(module).__name__, 0) + 1
    log.info("activation-lean forwards: %s", switched or "none (no supported block)")
    return switched
