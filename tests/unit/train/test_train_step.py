"""Step train in this process (DeepSpeed, one rank, gloo): outputs, metrics, arms, resume, NaN, LoRA."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file

from damo.data.dataset import PreferenceDataset, map_dataset
from damo.steps.train import TrainPaths, run
from damo.train.data import TrainDataError
from damo.train.loop import TrainingError
from tests.unit.train.conftest import fast_config

METRICS = {"loss", "rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy", "beta/mean",
           "beta/min", "beta/max", "alpha_m", "running_gap", "kept", "clamped", "pairs_per_s", "tokens_per_s"}


def train(data: Path, model: Path, out: Path, *overrides: str) -> dict[str, Any]:
    return run(fast_config(*overrides), TrainPaths(data=data, model=str(model), out=out))


def losses(out: Path) -> list[float]:
    return [h["loss"] for h in json.loads((out / "metrics.json").read_text())["history"]]


def test_training_writes_a_loadable_hf_folder_with_card_metrics_and_checkpoints(
        tiny_reference_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    result = train(tiny_reference_pairs, tiny_llava, tmp_path / "out")
    folder = tmp_path / "out" / "model"
    model = AutoModelForImageTextToText.from_pretrained(folder)
    AutoProcessor.from_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "config.yaml").is_file()
    base, trained = load_file(tiny_llava / "model.safetensors"), load_file(folder / "model.safetensors")
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    assert any("language_model" in k for k in changed) and not any("vision_tower" in k for k in changed)
    card = (folder / "README.md").read_text()
    assert "**dama**" in card and "learning_rate: 0.001" in card and str(tiny_reference_pairs) in card
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert all(set(h) >= METRICS for h in metrics["history"])
    assert metrics["history"][0]["loss"] == pytest.approx(math.log(2), abs=1e-6)  # policy == reference
    saved = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("step-*"))
    assert saved == ["step-00000002", "step-00000004"]
    assert result["steps"] == 4 and result["resumed_from"] == 0
    assert model.config.model_type == "llava"
    # train.zero_stage=2 is configured; one process runs stage 0 without the all-reduce, and says so
    assert result["layout"]["train.zero_stage_in_effect"] == 0
    assert result["layout"]["train.gradient_allreduce"] is False
    assert result["layout"]["train.engine"] == "torch"  # fp32 at one process: no DeepSpeed


def test_plain_dpo_arm_keeps_every_pair_at_the_base_beta(tiny_reference_pairs: Path, tiny_llava: Path,
                                                          tmp_path: Path) -> None:
    train(tiny_reference_pairs, tiny_llava, tmp_path / "out", "train.loss.arm=dpo")
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())["history"]
    assert all(h["beta/min"] == h["beta/max"] == pytest.approx(0.1) for h in history)
    assert all(h["kept"] == 4 and h["alpha_m"] == 1.0 for h in history)


def test_dama_arm_keeps_a_subset_and_scales_beta_per_pair(tiny_reference_pairs: Path, tiny_llava: Path,
                                                          tmp_path: Path) -> None:
    train(tiny_reference_pairs, tiny_llava, tmp_path / "out", "train.loss.keep_ratio=0.5",
          "train.gradient_checkpointing=true")
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())["history"]
    assert all(h["kept"] == 2 for h in history)  # ⌊0.5·2⌋ per micro-batch × 2 micro-batches
    assert all(h["beta/min"] < h["beta/max"] for h in history)
    assert history[-1]["running_gap"] != 0.0


def test_chosen_nll_alone_trains_the_chosen_answers_up(tiny_reference_pairs: Path, tiny_llava: Path,
                                                      tmp_path: Path) -> None:
    # preference_weight=0 leaves only the NLL of the chosen answers: the "SFT on chosen" control.
    train(tiny_reference_pairs, tiny_llava, tmp_path / "out", "train.loss.chosen_nll_weight=1.0",
          "train.loss.preference_weight=0")
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())["history"]
    nll = [h["chosen_nll"] for h in history]
    assert nll[-1] < nll[0]
    assert history[-1]["rewards/chosen"] > 0  # the chosen answers are now likelier than under the reference
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "Objective: **1·nll(chosen)** (the NLL of the chosen answers is not part of DAMA)" in card


def test_chosen_nll_is_reported_only_when_it_is_trained(tiny_reference_pairs: Path, tiny_llava: Path,
                                                       tmp_path: Path) -> None:
    train(tiny_reference_pairs, tiny_llava, tmp_path / "with", "train.loss.chosen_nll_weight=0.5",
          "train.max_steps=1")
    train(tiny_reference_pairs, tiny_llava, tmp_path / "without", "train.max_steps=1")
    with_nll, without = (json.loads((tmp_path / name / "metrics.json").read_text())["history"][0]
                         for name in ("with", "without"))
    assert with_nll["chosen_nll"] > 0 and "chosen_nll" not in without
    assert with_nll["loss"] == pytest.approx(without["loss"])  # the first step: the same policy


def test_resume_continues_exactly_where_the_run_stopped(tiny_reference_pairs: Path, tiny_llava: Path,
                                                        tmp_path: Path) -> None:
    train(tiny_reference_pairs, tiny_llava, tmp_path / "full")
    train(tiny_reference_pairs, tiny_llava, tmp_path / "part", "train.max_steps=2")
    resumed = train(tiny_reference_pairs, tiny_llava, tmp_path / "part")
    assert resumed["resumed_from"] == 2
    assert losses(tmp_path / "part") == pytest.approx(losses(tmp_path / "full"), abs=1e-6)
    full = json.loads((tmp_path / "full" / "result.json").read_text())
    assert resumed["running_gap"]["mean"] == pytest.approx(full["running_gap"]["mean"], abs=1e-6)


def test_a_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(
        tiny_reference_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    poisoned = tmp_path / "poisoned"
    source = PreferenceDataset(tiny_reference_pairs)
    values = source.read(["reference_chosen_logps"]).column(0).to_pylist()
    values[9] = float("nan")  # file order: row 9 is in optimizer step 3 (rows 8–11)
    writer = map_dataset(source, poisoned, [pa.field("reference_chosen_logps", pa.float64())],
                         lambda batch: {"reference_chosen_logps": values[: batch.num_rows]}, batch_size=64)
    writer.close()
    with pytest.raises(TrainingError, match=r"step 3.*step-00000002"):
        train(poisoned, tiny_llava, tmp_path / "out", "train.shuffle=false", "train.save_steps=1")
    assert (tmp_path / "out" / "checkpoints" / "step-00000002" / "complete.json").is_file()


def test_on_the_fly_reference_gives_the_same_losses_as_precomputed(
        tiny_pairs: Path, tiny_reference_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    train(tiny_reference_pairs, tiny_llava, tmp_path / "pre", "train.max_steps=2")
    train(tiny_pairs, tiny_llava, tmp_path / "fly", "train.max_steps=2", "train.reference=on_the_fly")
    assert losses(tmp_path / "fly") == pytest.approx(losses(tmp_path / "pre"), abs=1e-6)


def test_lora_trains_adapters_and_saves_them_merged(tiny_pairs: Path, tiny_llava: Path,
                                                    tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    train(tiny_pairs, tiny_llava, tmp_path / "out", "train.lora.enabled=true", "train.lora.r=2",
          "train.reference=on_the_fly", "train.learning_rate=1e-2")
    assert losses(tmp_path / "out")[0] == pytest.approx(math.log(2), abs=1e-6)  # adapters off == policy
    trained = load_file(tmp_path / "out" / "model" / "model.safetensors")
    base = load_file(tiny_llava / "model.safetensors")
    assert set(trained) == set(base)  # merged: no lora_A/lora_B keys
    assert not torch.equal(trained["language_model.model.layers.0.self_attn.q_proj.weight"],
                           base["language_model.model.layers.0.self_attn.q_proj.weight"])
    head = "language_model.lm_head.weight"  # outside the LoRA targets: untouched
    assert torch.equal(trained[head], base[head])
    AutoModelForImageTextToText.from_pretrained(tmp_path / "out" / "model")


def test_training_refuses_reference_columns_summed_over_other_rejected_tokens(
        tiny_reference_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    # The margin would compare a policy sum and a reference sum over different tokens.
    with pytest.raises(TrainDataError, match="rejected_tokens=through_fork"):
        train(tiny_reference_pairs, tiny_llava, tmp_path / "out", "train.loss.rejected_tokens=through_fork")
    assert not (tmp_path / "out" / "model").exists()


def test_rejected_answers_through_their_fork_train_and_are_named_in_the_card(
        tiny_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference

    config = fast_config("train.loss.rejected_tokens=through_fork")
    reference(config, ReferencePaths(data=tiny_pairs, model=str(tiny_llava), out=tmp_path / "ref"))
    report = PreferenceDataset(tmp_path / "ref").manifest.reports["reference"]
    assert report["rejected_tokens"] == "through_fork"
    train(tmp_path / "ref", tiny_llava, tmp_path / "out", "train.loss.rejected_tokens=through_fork",
          "train.max_steps=2")
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert ("Objective: **dama (rejected answers through their fork)** (counting rejected answers only "
            "through their fork is not part of DAMA)") in card


@pytest.mark.parametrize("reference", ["precomputed", "on_the_fly"])
def test_releasing_the_engine_frees_the_policy_and_the_reference(
        tiny_reference_pairs: Path, tiny_llava: Path, reference: str) -> None:
    """Before train.select's candidates are evaluated, nothing of the training run stays referenced."""
    import weakref

    from damo.train.loop import build_trainer, release_engine

    config = fast_config(f"train.reference={reference}")
    trainer = build_trainer(config, tiny_reference_pairs, str(tiny_llava))
    held = [weakref.ref(trainer.engine), weakref.ref(trainer.engine.module)]
    if trainer.reference is not None:
        held.append(weakref.ref(trainer.reference))
    assert len(held) == (3 if reference == "on_the_fly" else 2)
    release_engine(trainer)
    assert trainer.engine is None and trainer.reference is None
    assert [r() for r in held] == [None] * len(held)


@pytest.mark.parametrize(("clipping", "prompt_once"), [("1.0", True), ("null", False)])
def test_the_policy_runs_full_sequences_when_the_optimizer_steps_in_backward(
        tiny_reference_pairs: Path, tiny_llava: Path, clipping: str, prompt_once: bool) -> None:
    """Stepping in backward frees nothing while a weight, run for prompts and again for responses, holds
    its first gradient for the second (Plan.prompt_once): the built policy follows the layout."""
    from damo.train.loop import build_trainer, release_engine

    config = fast_config(f"train.max_grad_norm={clipping}", "train.micro_batch_size=4")  # no accumulation
    trainer = build_trainer(config, tiny_reference_pairs, str(tiny_llava))
    try:
        assert trainer.engine.module.prompt_once is prompt_once
    finally:
        release_engine(trainer)
