"""The DAMA loss, worked by hand (DAMA.md §2–3).

The running example, used by several tests — two pairs, β = 0.1, keep_ratio = 1 (keep both), R̄ = 0:

    policy   chosen  [-1, -2]   rejected [-3, -2]
    ref      chosen  [-2, -2]   rejected [-2, -2]
    h = (π_w − ref_w) − (π_l − ref_l) = [(1) − (−1), 0 − 0] = [2, 0]
    α_D = [1.2, 0.5]
    α_M = mean(σ(2), σ(0)) / σ(R̄=0) = ((0.880797 + 0.5) / 2) / 0.5 = 1.380797
    β_i = 0.1 · α_D · α_M = [0.165696, 0.069040]
    ℓ_1 = −log σ(0.165696 · 2) = −log σ(0.331391) = 0.541117
    ℓ_2 = −log σ(0.069040 · 0) = log 2 = 0.693147
    loss = (0.541117 + 0.693147) / 2 = 0.617132
    then R̄ ← 0.9 · 0 + 0.1 · mean(2, 0) = 0.1
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from damo.config import LossConfig
from damo.loss import (
    ARMS,
    LossOptions,
    NonFiniteLossInput,
    PreferenceLoss,
    RunningGap,
    chosen_nll,
    data_factor_from_delta,
    gumbel_top_k,
    keep_count,
    preference_loss,
)

POLICY_CHOSEN = [-1.0, -2.0]
POLICY_REJECTED = [-3.0, -2.0]
REF_CHOSEN = [-2.0, -2.0]
REF_REJECTED = [-2.0, -2.0]
ALPHA_D = [1.2, 0.5]


def options(**overrides: object) -> LossOptions:
    """``train.loss``'s defaults (the config is their one home), with ``overrides``."""
    return LossOptions.from_config(LossConfig.model_validate(overrides))


def dama_loss(*tensors: torch.Tensor, state: RunningGap, generator: torch.Generator | None = None,
              local_mask: torch.Tensor | None = None, **overrides: object):
    """The ``dama`` arm with the config's defaults except ``overrides``."""
    return preference_loss("dama", *tensors, state, options(**overrides), generator, local_mask)


def example(requires_grad: bool = False) -> list[torch.Tensor]:
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=requires_grad)
               for v in (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, ALPHA_D)]
    return tensors


def test_hand_computed_dama_loss() -> None:
    state = RunningGap()
    out = dama_loss(*example(), state=state, keep_ratio=1.0)
    assert out.keep_mask.tolist() == [True, True]
    assert out.model_factor == pytest.approx(1.380797, abs=1e-6)
    assert out.beta.tolist() == pytest.approx([0.165696, 0.069040], abs=1e-6)
    assert out.losses.tolist() == pytest.approx([0.541117, 0.693147], abs=1e-6)
    assert out.loss.item() == pytest.approx(0.617132, abs=1e-6)
    assert out.running_mean == 0.0
    assert state.mean == pytest.approx(0.1)
    # Rewards are logged with the BASE β: 0.1 · (π − ref).
    assert out.chosen_rewards.tolist() == pytest.approx([0.1, 0.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.1, 0.0])


def test_second_step_uses_the_old_running_mean() -> None:
    """Step 2, same inputs, R̄ = 0.1 from step 1 (R̄ moves only after the loss):

    α_M = ((0.880797 + 0.5) / 2) / σ(0.1) = 0.690399 / 0.524979 = 1.315097
    β_1 = 0.1 · 1.2 · 1.315097 = 0.157812;  ℓ_1 = −log σ(0.315623) = 0.547736
    loss = (0.547736 + 0.693147) / 2 = 0.620442;  then R̄ = 0.9 · 0.1 + 0.1 · 1 = 0.19
    """
    state = RunningGap()
    dama_loss(*example(), state=state, keep_ratio=1.0)
    out = dama_loss(*example(), state=state, keep_ratio=1.0)
    assert out.running_mean == pytest.approx(0.1)
    assert out.model_factor == pytest.approx(1.315097, abs=1e-6)
    assert out.loss.item() == pytest.approx(0.620442, abs=1e-6)
    assert state.mean == pytest.approx(0.19)


def test_gradients_reach_only_the_policy_logps() -> None:
    """dℓ_1/dπ_w,1 = −β_1 σ(−β_1 h_1) / K = −0.165696 · σ(−0.331391) / 2 = −0.034622.

    β (and so α_D and α_M) is a constant: if it carried gradient, this value would differ.
    """
    pc, pr, rc, rr, ad = example(requires_grad=True)
    out = dama_loss(pc, pr, rc, rr, ad, state=RunningGap(), keep_ratio=1.0)
    out.loss.backward()
    assert pc.grad is not None and pr.grad is not None
    assert pc.grad[0].item() == pytest.approx(-0.034622, abs=1e-6)
    assert pr.grad[0].item() == pytest.approx(0.034622, abs=1e-6)
    assert rc.grad is None and rr.grad is None and ad.grad is None
    assert not out.beta.requires_grad


def test_data_factor_from_delta() -> None:
    """α_D = σ(δ)/σ(δ̄): δ = δ̄ → 1; δ = 0, δ̄ = 0 → 1; δ = 2, δ̄ = 0 → 0.880797 / 0.5."""
    delta = torch.tensor([0.3, 0.0, 2.0])
    assert data_factor_from_delta(delta[:1], 0.3).item() == pytest.approx(1.0)
    assert data_factor_from_delta(delta, 0.0).tolist() == pytest.approx(
        [1 / (1 + math.exp(-0.3)) / 0.5, 1.0, 1.761594], abs=1e-6)


def test_dpo_arm_is_plain_dpo() -> None:
    """Fixed β = 0.1, all kept: ℓ = [−log σ(0.2), log 2] = [0.598139, 0.693147], mean 0.645643."""
    out = preference_loss("dpo", *example(), RunningGap(), options())
    assert out.keep_mask.all() and out.model_factor == 1.0
    assert out.beta.tolist() == pytest.approx([0.1, 0.1])
    assert out.loss.item() == pytest.approx(0.645643, abs=1e-6)


def test_label_smoothing_is_conservative_dpo() -> None:
    """ε = 0.2: ℓ_1 = 0.8 · (−log σ(0.2)) + 0.2 · (−log σ(−0.2)) = 0.8 · 0.598139 + 0.2 · 0.798139
    = 0.638139; ℓ_2 = log 2 (h = 0, either label); mean 0.665643."""
    out = preference_loss("dpo", *example(), RunningGap(), options(label_smoothing=0.2))
    assert out.losses.tolist() == pytest.approx([0.638139, 0.693147], abs=1e-6)
    assert out.loss.item() == pytest.approx(0.665643, abs=1e-6)


def test_label_smoothing_stops_the_margin_at_its_finite_optimum() -> None:
    """With ε = 0.2 the loss is flat where β h = ln(0.8 / 0.2) = ln 4, and still falls below it."""
    def slope(margin: float) -> float:
        chosen = torch.tensor([margin], dtype=torch.float64, requires_grad=True)
        zeros = torch.zeros(1, dtype=torch.float64)
        out = preference_loss("dpo", chosen, zeros, zeros, zeros, torch.ones(1, dtype=torch.float64),
                              RunningGap(), options(label_smoothing=0.2))
        out.loss.backward()
        return float(chosen.grad.item())  # type: ignore[union-attr]

    assert slope(math.log(4) / 0.1) == pytest.approx(0.0, abs=1e-12)
    assert slope(5.0) < 0 < slope(20.0)


def test_data_arm_ignores_the_model_factor_and_model_arm_the_data_factor() -> None:
    data = preference_loss("data", *example(), RunningGap(), options(keep_ratio=1.0))
    assert data.beta.tolist() == pytest.approx([0.12, 0.05])
    model = preference_loss("model", *example(), RunningGap(), options(keep_ratio=1.0))
    assert model.beta.tolist() == pytest.approx([0.1380797, 0.1380797], abs=1e-6)


def test_sigmoid_of_mean_option() -> None:
    """Algorithm 1's reading: α_M = σ(mean R_kept) / σ(R̄) = σ(1) / 0.5 = 1.462117."""
    out = preference_loss("dama", *example(), RunningGap(),
                          options(keep_ratio=1.0, model_factor="sigmoid_mean"))
    assert out.model_factor == pytest.approx(1.462117, abs=1e-6)


def test_beta_dpo_updates_before_the_loss() -> None:
    """β-DPO: R̄ ← 0.9·0 + 0.1·1 = 0.1 first; β = 0.1 · (1 + 0.6 · (mean R_kept − 0.1)) = 0.1 · 1.54."""
    state = RunningGap()
    out = preference_loss("beta_dpo", *example(), state, options(keep_ratio=1.0, beta_dpo_alpha=0.6))
    assert out.running_mean == pytest.approx(0.1)
    assert out.model_factor == pytest.approx(1.54)
    assert out.beta.tolist() == pytest.approx([0.154, 0.154])
    assert state.mean == pytest.approx(0.1)  # not moved a second time


def test_beta_is_clamped_at_beta_min() -> None:
    pc, pr, rc, rr, _ = example()
    out = dama_loss(pc, pr, rc, rr, torch.tensor([1e-6, 1.0], dtype=torch.float64), state=RunningGap(),
                    keep_ratio=1.0, beta_min=1e-3)
    assert out.beta[0].item() == pytest.approx(1e-3)
    assert out.num_clamped == 1


def test_keep_count() -> None:
    assert keep_count(1, 0.8) == 1  # the authors' int(0.8 · 1) = 0 would keep nothing
    assert keep_count(16, 0.8) == 12
    assert keep_count(5, 1.0) == 5


def test_keep_ratio_one_keeps_everything() -> None:
    gaps = torch.tensor([0.0, 30.0, -1e4, 1e4, 5.0])
    out = preference_loss("dama", gaps, torch.zeros(5), torch.zeros(5), torch.zeros(5), torch.ones(5),
                          RunningGap(), options(keep_ratio=1.0))
    assert out.keep_mask.all()


@pytest.mark.parametrize("far", [50.0, 1e4])
def test_keep_set_survives_far_apart_gaps(far: float) -> None:
    """exp(−½·50²) underflows to 0 in float64; the log-space draw still picks the right samples."""
    gaps = torch.tensor([0.0, far, -far, 2 * far], dtype=torch.float64)
    out = preference_loss("dama", gaps, torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.ones(4),
                          RunningGap(), options(keep_ratio=0.5), torch.Generator().manual_seed(0))
    assert out.num_kept == 2 and out.keep_mask[0]
    assert torch.isfinite(out.loss)
    # Every gap far from R̄ = 0: still K distinct samples, no crash.
    all_far = torch.full((4,), far, dtype=torch.float64) + torch.arange(4)
    mask = gumbel_top_k(-0.5 * all_far**2, 3, torch.Generator().manual_seed(1))
    assert int(mask.sum()) == 3


def test_keep_set_samples_in_proportion_to_the_gaussian_weight() -> None:
    """K = 1 of gaps [0, 1, 2], R̄ = 0: P ∝ [1, e^−0.5, e^−2] = [0.552, 0.335, 0.075] / 0.962."""
    weights = torch.tensor([1.0, math.exp(-0.5), math.exp(-2.0)])
    expected = (weights / weights.sum()).tolist()
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(3)
    trials = 4000
    log_w = torch.log(weights)
    for _ in range(trials):
        counts += gumbel_top_k(log_w, 1, gen).float()
    assert (counts / trials).tolist() == pytest.approx(expected, abs=0.03)


@pytest.mark.parametrize("name", ["policy_chosen_logps", "reference_rejected_logps", "data_factor"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises_naming_the_tensor(name: str, bad: float) -> None:
    tensors = dict(zip(["policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
                        "reference_rejected_logps", "data_factor"], example()))
    tensors[name] = tensors[name].clone()
    tensors[name][1] = bad
    with pytest.raises(NonFiniteLossInput, match=f"{name} holds NaN/inf at indices \\[1\\]"):
        dama_loss(*tensors.values(), state=RunningGap())


def test_local_mask_averages_over_this_ranks_kept_pairs() -> None:
    out = dama_loss(*example(), state=RunningGap(), keep_ratio=1.0, local_mask=torch.tensor([False, True]))
    assert out.loss.item() == pytest.approx(math.log(2))
    none_local = dama_loss(*example(requires_grad=True), state=RunningGap(), keep_ratio=1.0,
                           local_mask=torch.tensor([False, False]))
    assert none_local.loss.item() == 0.0 and none_local.loss.requires_grad


def test_state_round_trip_continues_identically() -> None:
    state = RunningGap()
    dama_loss(*example(), state=state)
    restored = RunningGap()
    restored.load_state_dict(json.loads(json.dumps(state.state_dict())))
    a = dama_loss(*example(), state=state, generator=torch.Generator().manual_seed(3))
    b = dama_loss(*example(), state=restored, generator=torch.Generator().manual_seed(3))
    assert a.loss.item() == b.loss.item() and a.keep_mask.tolist() == b.keep_mask.tolist()
    assert state.state_dict() == restored.state_dict()


def test_the_loss_object_is_built_once_from_the_config_and_owns_the_running_gap() -> None:
    config = LossConfig(arm="dama", keep_ratio=1.0)
    loss = PreferenceLoss(config)
    assert loss.options == options(keep_ratio=1.0)  # every value from the config, none of its own
    first = loss(*example(), generator=torch.Generator().manual_seed(3))
    assert first.loss.item() == pytest.approx(0.617132, abs=1e-6)  # the running example
    assert loss.state_dict() == {"mean": pytest.approx(0.1), "std": pytest.approx(1.0), "updates": 1}
    resumed = PreferenceLoss(config)
    resumed.load_state_dict(json.loads(json.dumps(loss.state_dict())))
    a, b = loss(*example()), resumed(*example())
    assert a.loss.item() == b.loss.item() and loss.state_dict() == resumed.state_dict()


def test_unknown_arm_and_options_refused() -> None:
    assert set(ARMS) == {"dpo", "data", "model", "dama", "beta_dpo"}
    with pytest.raises(ValueError, match="unknown loss arm 'ipo'"):
        preference_loss("ipo", *example(), RunningGap(), options())
    with pytest.raises(ValueError, match="model_factor"):
        dataclasses.replace(options(), model_factor="median")
    with pytest.raises(ValueError, match="label_smoothing"):
        dataclasses.replace(options(), label_smoothing=0.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        LossConfig.model_validate({"label_smoothing": 0.5})


def _rank_keep_sets(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)  # each rank holds different pairs
        local = [torch.randn(8, dtype=torch.float64) * 0.5 for _ in range(4)]
        gathered = []
        for t in local:
            parts = [torch.empty_like(t) for _ in range(world)]
            dist.all_gather(parts, t)
            gathered.append(torch.cat(parts))
        masks = []
        state = RunningGap()
        for step in range(5):  # same seed per step on every rank, as the trainer does
            gen = torch.Generator().manual_seed(1000 + step)
            out = dama_loss(*gathered, torch.ones(8 * world, dtype=torch.float64), state=state,
                            generator=gen)
            masks.append(out.keep_mask.tolist())
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"masks": masks, "mean": state.mean}, f)
    finally:
        dist.destroy_process_group()


def test_every_rank_keeps_the_same_pairs() -> None:
    """Two real gloo processes gather their pairs and draw the keep-set independently."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank_keep_sets, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        results = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1]
    masks = results[0]["masks"]
    assert all(sum(m) == 12 for m in masks)  # K = ⌊0.8 · 16⌋
    assert len({tuple(m) for m in masks}) > 1  # the draw really varies by step


def test_chosen_nll_is_the_mean_per_token_nll_over_pairs() -> None:
    # Pair 1: logp −3 over 3 tokens → 1 nat/token; pair 2: −1 over 2 → 0.5. Mean 0.75.
    logps = torch.tensor([-3.0, -1.0], dtype=torch.float64, requires_grad=True)
    nll = chosen_nll(logps, torch.tensor([3, 2]))
    assert nll.item() == pytest.approx(0.75)
    nll.backward()
    # d/dlogp_i of mean(−logp_i / n_i) = −1 / (n_i · B): a short answer's log-prob weighs more
    assert logps.grad.tolist() == pytest.approx([-1 / 6, -1 / 4])


def test_chosen_nll_refuses_mismatched_or_empty_answers() -> None:
    with pytest.raises(ValueError, match="does not match"):
        chosen_nll(torch.tensor([-1.0, -2.0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="at least one response token"):
        chosen_nll(torch.tensor([-1.0]), torch.tensor([0]))


def test_a_loss_with_nothing_to_train_is_refused() -> None:
    with pytest.raises(ValueError, match="both 0"):
        LossConfig.model_validate({"preference_weight": 0})
    assert LossConfig.model_validate({"preference_weight": 0, "chosen_nll_weight": 1}).preference_weight == 0


@pytest.mark.parametrize(("settings", "objective"), [
    ({}, "dama"),
    ({"arm": "dpo", "chosen_nll_weight": 0.5}, "dpo + 0.5·nll(chosen)"),
    ({"preference_weight": 0, "chosen_nll_weight": 1}, "1·nll(chosen)"),
    ({"preference_weight": 2}, "2·dama"),
    ({"arm": "dpo", "label_smoothing": 0.2}, "dpo (label smoothing 0.2)"),
])
def test_the_objective_names_every_term_it_trains(settings: dict[str, object], objective: str) -> None:
    assert LossConfig.model_validate(settings).objective == objective
