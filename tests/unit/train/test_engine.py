"""DeepSpeed config from the shipped ZeRO presets, and the lr schedule."""

from __future__ import annotations

import importlib.resources
import json

import pytest
import torch

from damo.config import load_config
from damo.train.engine import deepspeed_config, lr_lambda, plan


@pytest.mark.parametrize("name", ["zero2.json", "zero3.json"])
def test_zero_presets_ship_as_package_data(name: str) -> None:
    preset = json.loads((importlib.resources.files("configs") / "deepspeed" / name).read_text())
    assert preset["zero_optimization"]["stage"] == int(name[4])


def test_batches_accumulation_clipping_and_precision_come_from_the_config() -> None:
    train = load_config(None, ["train.global_batch_size=16", "train.micro_batch_size=2", "train.zero_stage=3",
                               "train.max_grad_norm=0.5", "train.num_processes=2"]).train
    ds = deepspeed_config(train, world_size=2, dtype=torch.bfloat16)
    assert ds["train_batch_size"] == 16 and ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["gradient_accumulation_steps"] == 4
    assert ds["gradient_clipping"] == 0.5 and ds["bf16"] == {"enabled": True}
    assert ds["zero_optimization"]["stage"] == 3
    assert deepspeed_config(train, world_size=2, dtype=torch.float32)["bf16"] == {"enabled": False}


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_one_process_runs_without_zero_and_without_the_all_reduce(stage: int) -> None:
    train = load_config(None, [f"train.zero_stage={stage}"]).train
    one = plan(train, world_size=1)
    assert one.zero_stage == 0 and not one.gradient_allreduce
    assert deepspeed_config(train, world_size=1, dtype=torch.float32)["zero_optimization"] == {"stage": 0}
    assert one.params()["train.zero_stage_in_effect"] == 0
    assert one.params()["train.gradient_allreduce"] is False


@pytest.mark.parametrize(("precision", "world", "engine"), [
    ("fp32", 1, "torch"),  # one fp32 process: plain torch, DeepSpeed not even imported
    ("bf16", 1, "deepspeed"),  # bf16 needs DeepSpeed's fp32 master weights
    ("fp32", 2, "deepspeed"),  # across ranks: DeepSpeed, ZeRO as configured
])
def test_the_engine_follows_precision_and_world_size(precision: str, world: int, engine: str) -> None:
    train = load_config(None, [f"train.precision={precision}", f"train.num_processes={world}"]).train
    assert plan(train, world_size=world).engine == engine
    assert plan(train, world_size=world).params()["train.engine"] == engine


@pytest.mark.parametrize(("settings", "in_backward"), [
    (["train.max_grad_norm=null", "train.global_batch_size=4", "train.micro_batch_size=4"], True),
    (["train.max_grad_norm=1.0", "train.global_batch_size=4", "train.micro_batch_size=4"], False),  # clips
    (["train.max_grad_norm=null", "train.global_batch_size=8", "train.micro_batch_size=4"], False),  # accum.
    (["train.max_grad_norm=null", "train.global_batch_size=4", "train.micro_batch_size=4",
      "train.precision=bf16"], False),  # DeepSpeed's engine
])
def test_the_optimizer_steps_in_backward_only_where_it_is_the_same_update(settings: list[str],
                                                                          in_backward: bool) -> None:
    train = load_config(None, ["train.precision=fp32", *settings]).train
    assert plan(train, world_size=1).optimizer_in_backward is in_backward
    assert plan(train, world_size=1).params()["train.optimizer_in_backward"] is in_backward
    # stepping in backward frees nothing while a weight's first gradient waits for its second
    assert plan(train, world_size=1).params()["train.prompt_once"] is not in_backward


def test_no_clipping_is_deepspeed_clipping_zero() -> None:
    train = load_config(None, ["train.max_grad_norm=null"]).train
    assert deepspeed_config(train, world_size=2, dtype=torch.float32)["gradient_clipping"] == 0.0


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_across_ranks_zero_runs_as_configured(stage: int) -> None:
    train = load_config(None, [f"train.zero_stage={stage}", "train.num_processes=2"]).train
    many = plan(train, world_size=2)
    assert many.zero_stage == stage and many.gradient_allreduce
    assert deepspeed_config(train, world_size=2, dtype=torch.float32)["zero_optimization"]["stage"] == stage
    assert many.params()["train.world_size"] == 2


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    train = load_config(None, ["train.lr_schedule=cosine", "train.warmup_ratio=0.1"]).train
    f = lr_lambda(train, total_steps=100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5, abs=0.02)
    assert f(100) == pytest.approx(0.0, abs=1e-9)


def test_constant_schedule_is_constant() -> None:
    f = lr_lambda(load_config(None, ["train.lr_schedule=constant", "train.warmup_ratio=0"]).train, 10)
    assert {f(s) for s in range(10)} == {1.0}
