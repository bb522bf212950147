"""The DAMA loss: DPO with a per-sample β scaled by data hardness and by the model's running gap.

Pure math on tensors — no device, no ``torch.distributed``, no I/O — usable from any trainer. The
caller gathers the four log-prob vectors over all ranks first: every statistic here is over the
GLOBAL batch (DAMA.md §2.1). Notation (DAMA.md):

- ``h_i = [logp_θ(y_w) − logp_ref(y_w)] − [logp_θ(y_l) − logp_ref(y_l)]``: the log-ratio margin; its
  detached value is the reward gap ``R_i``.
- Data factor ``α_D,i = σ(δ_i) / σ(δ̄)`` from the CLIP hardness step (:func:`data_factor_from_delta`).
- Keep-set: ``K = max(1, ⌊keep_ratio·N⌋)`` distinct samples drawn with probability
  ∝ ``w_i = exp(−½ ((R_i − R̄)/s)²)`` (``s = 1``, or the running std for β-DPO).
- Model factor ``α_M = mean_{j∈kept} σ(R_j) / σ(R̄)`` with the OLD ``R̄``.
- ``β_i = max(β · α_D,i · α_M, β_min)``, ``ℓ_i = −log σ(β_i · h_i)``; the loss is the mean of ``ℓ_i``
  over the kept samples that live on this rank.
- Then ``R̄ ← γ R̄ + (1 − γ) mean_i R_i`` over all N samples (β-DPO: before the loss).

The ablation arms (``dpo``, ``data``, ``model``, ``dama``, ``beta_dpo``) are rows of :data:`ARMS`:
each names a data-factor function, a keep-set function and a model-factor function.

Where we depart from the paper and the authors' code:

1. The keep-set is drawn in log space by Gumbel-top-K instead of ``torch.multinomial(w, K)``. The
   two draw from the same distribution (sampling without replacement ∝ w), but far-off gaps
   (|R − R̄| ≳ 40) underflow ``w`` to exact zeros and crash ``multinomial``; log weights do not.
2. ``K = max(1, ⌊keep_ratio·N⌋)``: the authors' ``int(0.8·N)`` keeps nothing when N = 1.
3. ``δ̄`` is computed from the training data and passed in; the authors hard-code their data's mean.
4. The draw takes a caller-seeded ``generator``: with the same seed on every rank and the gathered
   gaps, all ranks keep the same samples without a broadcast.
5. Non-finite inputs raise :class:`NonFiniteLossInput` instead of the authors' ``exit()`` on NaN.
6. With ``keep_ratio = 1.0`` every sample is kept (Gumbel-top-N), so α_M is the mean over all.

Options outside DAMA, off by default: the chosen answers' NLL (:func:`chosen_nll`), rejected
log-probs summed only through the fork (``train.loss.rejected_tokens``; it changes the log-probs this
loss is given, not the loss: :mod:`damo.train.batch`), and conservative DPO's label smoothing
(``label_smoothing`` = ε: ``ℓ_i = −(1 − ε) log σ(β_i h_i) − ε log σ(−β_i h_i)``, the expected loss of a
pair whose label is wrong with probability ε; TRL's ``label_smoothing``). With ε > 0 the loss has a
finite optimum, ``β_i h_i = ln((1 − ε) / ε)``, instead of pushing every margin on. It is what DPO on
labels swapped at random amounts to in expectation, the control of benchmarks/tiny_effect.md ("Label
errors on one kind of pair"), where it measured unlike the noisy labels themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from damo.errors import DamoError

if TYPE_CHECKING:
    from damo.config import LossConfig


class NonFiniteLossInput(DamoError, ValueError):
    """A log-prob or data-factor tensor given to the loss holds NaN or ±inf."""


# --------------------------------------------------------------------------- state
@dataclass
class RunningGap:
    """Training state of the model-aware factor: the running mean ``R̄`` (and std, for β-DPO).

    ``mean`` starts at 0 (DAMA.md §2.2) and ``std`` at 1 (the unit-variance default of the keep
    weights). It must be checkpointed with the optimizer: :meth:`state_dict` / :meth:`load_state_dict`.
    """

    mean: float = 0.0
    std: float = 1.0
    updates: int = 0

    def update(self, gaps: Tensor, gamma: float) -> None:
        """``R̄ ← γ R̄ + (1 − γ) mean(gaps)``; the std follows the same EMA of the batch std."""
        gaps = gaps.detach().double()
        batch_std = gaps.std(unbiased=False).item() if gaps.numel() > 1 else self.std
        self.mean = gamma * self.mean + (1.0 - gamma) * gaps.mean().item()
        self.std = gamma * self.std + (1.0 - gamma) * batch_std
        self.updates += 1

    def state_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = float(state["mean"])
        self.std = float(state["std"])
        self.updates = int(state["updates"])


@dataclass(frozen=True)
class LossOptions:
    """Hyper-parameters of one loss call: ``train.loss`` of the config (:meth:`from_config`), where
    their defaults live (DAMA.md's values); this class has none of its own."""

    beta: float
    keep_ratio: float
    gamma: float
    beta_min: float
    model_factor: str  # "mean_sigmoid" (the authors' code) or "sigmoid_mean" (Algorithm 1's reading)
    keep_weight: str  # "unit" or "running_std"
    beta_dpo_alpha: float
    label_smoothing: float  # ε of conservative DPO; 0 is DAMA's loss

    @classmethod
    def from_config(cls, loss: LossConfig) -> LossOptions:
        return cls(beta=loss.beta, keep_ratio=loss.keep_ratio, gamma=loss.gamma, beta_min=loss.beta_min,
                   model_factor=loss.model_factor, keep_weight=loss.keep_weight,
                   beta_dpo_alpha=loss.beta_dpo_alpha, label_smoothing=loss.label_smoothing)

    def __post_init__(self) -> None:
        if self.model_factor not in MODEL_FACTORS:
            raise ValueError(f"model_factor {self.model_factor!r}; choose one of {sorted(MODEL_FACTORS)}")
        if self.keep_weight not in KEEP_SCALES:
            raise ValueError(f"keep_weight {self.keep_weight!r}; choose one of {sorted(KEEP_SCALES)}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


@dataclass
class DamaLossOutput:
    """What one loss call returns. All tensors are (N,) over the global batch, except ``loss``."""

    loss: Tensor  # scalar: mean ℓ over this rank's kept samples (carries the gradient)
    losses: Tensor  # ℓ_i for every sample, kept or not
    keep_mask: Tensor  # bool
    beta: Tensor  # β_i used (detached)
    data_factor: Tensor  # α_D used (ones for arms without it)
    model_factor: float  # α_M (β-DPO: its 1 + a(mean R_kept − R̄))
    gaps: Tensor  # R_i = h_i, detached
    chosen_rewards: Tensor  # base β · (logp_θ − logp_ref), detached
    rejected_rewards: Tensor
    running_mean: float  # R̄ used for this call's keep-set and α_M
    num_clamped: int  # β_i that hit β_min
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def num_kept(self) -> int:
        return int(self.keep_mask.sum().item())


# --------------------------------------------------------------------------- pieces
def data_factor_from_delta(delta: Tensor, delta_mean: float) -> Tensor:
    """``α_D = σ(δ) / σ(δ̄)``: above 1 for pairs easier than average, below 1 for harder ones.

    Args:
        delta: (N,) CLIP hardness ``δ = c_w − c_l`` per pair.
        delta_mean: ``δ̄``, the mean of δ over the training set (from the dataset manifest).
    """
    return torch.sigmoid(delta) / torch.sigmoid(torch.tensor(delta_mean, dtype=delta.dtype))


def log_ratio_margin(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
                     reference_chosen_logps: Tensor, reference_rejected_logps: Tensor) -> Tensor:
    """``h = (π_w − ref_w) − (π_l − ref_l)``, all (N,) summed log-probs."""
    return (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)


def gumbel_top_k(log_weights: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask of ``k`` distinct indices drawn ∝ ``exp(log_weights)`` without replacement.

    Adding i.i.d. Gumbel noise to log-weights and taking the top k is exactly sequential sampling
    without replacement (Plackett–Luce); it never exponentiates, so it cannot underflow.
    """
    uniform = torch.rand(log_weights.shape, generator=generator, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny  # keeps log(0) out of reach; not a tuning constant
    gumbel = -torch.log(-torch.log(uniform.clamp_min(tiny)))
    scores = log_weights.detach().double().cpu() + gumbel
    mask = torch.zeros(log_weights.shape, dtype=torch.bool)
    mask[scores.topk(k).indices] = True
    return mask.to(log_weights.device)


def keep_count(n: int, keep_ratio: float) -> int:
    return max(1, math.floor(keep_ratio * n))


def _check_finite(**tensors: Tensor) -> None:
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).nonzero().flatten().tolist()[:8]
            raise NonFiniteLossInput(f"{name} holds NaN/inf at indices {bad}: refusing to compute the loss")


# --------------------------------------------------------------------------- arm pieces
# Each returns α_D (N,) given the pair's data factor.
def _data_none(data_factor: Tensor) -> Tensor:
    return torch.ones_like(data_factor)


def _data_clip(data_factor: Tensor) -> Tensor:
    return data_factor


# Each returns the keep mask (N,) given gaps, R̄, the state and options.
def _keep_all(gaps: Tensor, center: float, state: RunningGap, opts: LossOptions,
              generator: torch.Generator | None) -> Tensor:
    return torch.ones_like(gaps, dtype=torch.bool)


def _gaussian_keep(gaps: Tensor, center: float, scale: float, opts: LossOptions,
                   generator: torch.Generator | None) -> Tensor:
    scale = max(scale, torch.finfo(torch.float64).eps)  # a zero running std must not divide by 0
    log_w = -0.5 * ((gaps.double() - center) / scale) ** 2
    return gumbel_top_k(log_w, keep_count(gaps.numel(), opts.keep_ratio), generator)


def _keep_by_option(gaps: Tensor, center: float, state: RunningGap, opts: LossOptions,
                    generator: torch.Generator | None) -> Tensor:
    return _gaussian_keep(gaps, center, KEEP_SCALES[opts.keep_weight](state), opts, generator)


def _keep_running_std(gaps: Tensor, center: float, state: RunningGap, opts: LossOptions,
                      generator: torch.Generator | None) -> Tensor:
    return _gaussian_keep(gaps, center, state.std, opts, generator)


KEEP_SCALES: dict[str, Callable[[RunningGap], float]] = {
    "unit": lambda state: 1.0,
    "running_std": lambda state: state.std,
}


# Each returns the scalar model factor given the gaps, the keep mask and R̄.
def _factor_one(gaps: Tensor, kept: Tensor, center: float, opts: LossOptions) -> float:
    return 1.0


def _factor_mean_sigmoid(gaps: Tensor, kept: Tensor, center: float, opts: LossOptions) -> float:
    return (torch.sigmoid(gaps[kept].double()).mean() / _sigmoid(center)).item()


def _factor_sigmoid_mean(gaps: Tensor, kept: Tensor, center: float, opts: LossOptions) -> float:
    return _sigmoid(gaps[kept].double().mean().item()) / _sigmoid(center)


def _factor_beta_dpo(gaps: Tensor, kept: Tensor, center: float, opts: LossOptions) -> float:
    return 1.0 + opts.beta_dpo_alpha * (gaps[kept].double().mean().item() - center)


def _factor_by_option(gaps: Tensor, kept: Tensor, center: float, opts: LossOptions) -> float:
    return MODEL_FACTORS[opts.model_factor](gaps, kept, center, opts)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


MODEL_FACTORS: dict[str, Callable[[Tensor, Tensor, float, LossOptions], float]] = {
    "mean_sigmoid": _factor_mean_sigmoid,
    "sigmoid_mean": _factor_sigmoid_mean,
}


@dataclass(frozen=True)
class Arm:
    """One ablation arm: which α_D, which keep-set, which model factor, and when R̄ moves."""

    data: Callable[[Tensor], Tensor]
    keep: Callable[[Tensor, float, RunningGap, LossOptions, torch.Generator | None], Tensor]
    factor: Callable[[Tensor, Tensor, float, LossOptions], float]
    update_before_loss: bool = False


ARMS: dict[str, Arm] = {
    "dpo": Arm(_data_none, _keep_all, _factor_one),
    "data": Arm(_data_clip, _keep_all, _factor_one),
    "model": Arm(_data_none, _keep_by_option, _factor_by_option),
    "dama": Arm(_data_clip, _keep_by_option, _factor_by_option),
    "beta_dpo": Arm(_data_none, _keep_running_std, _factor_beta_dpo, update_before_loss=True),
}


# --------------------------------------------------------------------------- the loss
def preference_loss(arm: str, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
                    reference_chosen_logps: Tensor, reference_rejected_logps: Tensor,
                    data_factor: Tensor, state: RunningGap, options: LossOptions,
                    generator: torch.Generator | None = None, local_mask: Tensor | None = None
                    ) -> DamaLossOutput:
    """The loss of one ablation arm over a global batch of N pairs; updates ``state``.

    Args:
        arm: a key of :data:`ARMS`.
        policy_chosen_logps, policy_rejected_logps: (N,) summed response log-probs under the policy;
            only these carry gradients (entries from other ranks may be detached copies).
        reference_chosen_logps, reference_rejected_logps: (N,) the same under the reference model.
        data_factor: (N,) α_D per pair (:func:`data_factor_from_delta`); ignored by arms without it.
        state: the running gap statistics, updated in place.
        generator: seeds the keep-set draw; seed it identically on every rank.
        local_mask: (N,) bool, the pairs that live on this rank (default: all). The loss averages
            ``ℓ`` over kept ∩ local, so summing gradients over ranks weighs each kept pair once.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown loss arm {arm!r}; choose one of {sorted(ARMS)}")
    _check_finite(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                  reference_chosen_logps=reference_chosen_logps,
                  reference_rejected_logps=reference_rejected_logps, data_factor=data_factor)
    spec = ARMS[arm]
    # The reference is a constant of the objective: gradients reach the policy log-probs only.
    reference_chosen_logps = reference_chosen_logps.detach()
    reference_rejected_logps = reference_rejected_logps.detach()
    h = log_ratio_margin(policy_chosen_logps, policy_rejected_logps,
                         reference_chosen_logps, reference_rejected_logps)
    gaps = h.detach()
    if spec.update_before_loss:
        state.update(gaps, options.gamma)
    center = state.mean  # the OLD R̄ for DAMA; already moved for β-DPO
    keep_mask = spec.keep(gaps, center, state, options, generator)
    model_factor = spec.factor(gaps, keep_mask, center, options)
    alpha_d = spec.data(data_factor.detach().to(gaps.dtype))
    raw_beta = options.beta * alpha_d * model_factor
    beta = raw_beta.clamp_min(options.beta_min).detach()
    losses = -F.logsigmoid(beta * h)
    if options.label_smoothing > 0:  # at 0 the loss stays bit for bit DAMA's
        losses = (1 - options.label_smoothing) * losses - options.label_smoothing * F.logsigmoid(-beta * h)
    selected = keep_mask if local_mask is None else keep_mask & local_mask.to(keep_mask.device)
    # A rank with no kept pair still returns a loss tied to the graph (value 0), so every rank
    # runs backward and the gradient all-reduce never waits on a rank that skipped it.
    loss = (losses * selected).sum() / max(int(selected.sum().item()), 1)
    if not spec.update_before_loss:
        state.update(gaps, options.gamma)
    return DamaLossOutput(
        loss=loss, losses=losses, keep_mask=keep_mask, beta=beta, data_factor=alpha_d,
        model_factor=model_factor, gaps=gaps,
        chosen_rewards=options.beta * (policy_chosen_logps - reference_chosen_logps).detach(),
        rejected_rewards=options.beta * (policy_rejected_logps - reference_rejected_logps).detach(),
        running_mean=center, num_clamped=int((raw_beta < options.beta_min).sum().item()),
    )


def chosen_nll(policy_chosen_logps: Tensor, chosen_tokens: Tensor) -> Tensor:
    """Mean over pairs of the chosen answer's negative log-likelihood per token (RPO's anchor term).

    Args:
        policy_chosen_logps: (B,) summed response log-probs of the chosen answers under the policy
            (this rank's pairs; carries the gradient).
        chosen_tokens: (B,) the number of response tokens each sum runs over (≥ 1).

    Returns a scalar ``mean_i(−logp_θ(y_w,i) / |y_w,i|)``. Added to the preference loss with weight
    ``train.loss.chosen_nll_weight`` (Pang et al. 2024, "Iterative Reasoning Preference
    Optimization"; TRL's ``rpo_alpha``). It is NOT part of DAMA. Why offer it: when chosen and
    rejected share all but a few tokens (the tiny world's one-word and one-clause edits), DPO lowers
    both answers' likelihood and, with the rejected answer's closing tokens, the end of every answer
    (Pal et al. 2024, "Smaug"); the anchor keeps the chosen answers likely.

    Departures from TRL: the NLL is normalised per pair and then averaged over pairs (TRL averages over
    all chosen tokens of the batch), so a long answer weighs as much as a short one, like ℓ_i.
    """
    if chosen_tokens.shape != policy_chosen_logps.shape:
        raise ValueError(f"chosen_tokens {tuple(chosen_tokens.shape)} does not match the log-probs "
                         f"{tuple(policy_chosen_logps.shape)}")
    if bool((chosen_tokens < 1).any()):
        raise ValueError("every chosen answer needs at least one response token")
    return (-policy_chosen_logps / chosen_tokens.to(policy_chosen_logps.dtype)).mean()


class PreferenceLoss:
    """The loss of one arm, built once from ``train.loss``; it owns the running gap ``R̄``.

    A trainer calls it once per micro-step on the global batch (:func:`preference_loss`) and
    checkpoints it with :meth:`state_dict` / :meth:`load_state_dict` (the running gap's state).
    """

    def __init__(self, loss: LossConfig) -> None:
        if loss.arm not in ARMS:
            raise ValueError(f"unknown loss arm {loss.arm!r}; choose one of {sorted(ARMS)}")
        self.arm = loss.arm
        self.options = LossOptions.from_config(loss)
        self.gap = RunningGap()

    def __call__(self, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
                 reference_chosen_logps: Tensor, reference_rejected_logps: Tensor, data_factor: Tensor,
                 generator: torch.Generator | None = None, local_mask: Tensor | None = None
                 ) -> DamaLossOutput:
        return preference_loss(self.arm, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                               reference_rejected_logps, data_factor, self.gap, self.options, generator,
                               local_mask)

    def state_dict(self) -> dict[str, float | int]:
        return self.gap.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gap.load_state_dict(state)
