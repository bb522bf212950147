"""Two real DeepSpeed processes (torch.distributed.run, gloo) train like one process on the same batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForImageTextToText

from damo.config import load_config
from damo.steps.reference import ReferencePaths
from damo.steps.reference import run as reference
from damo.steps.train import TrainPaths, run
from tests.unit.train.tiny import build_selection_images, build_tiny_llava, build_tiny_pairs

pytestmark = pytest.mark.integration

# Arm `data` keeps every pair, so each rank's loss averages over the same number of pairs and the
# ranks' averaged gradients equal one process's gradient over the whole micro-batch.
COMMON = ("train.global_batch_size=8", "train.max_steps=3", "train.save_steps=3", "train.logging_steps=1",
          "train.learning_rate=1e-3", "train.loss.arm=data", "train.select.benchmark=null")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dist")
    model = build_tiny_llava(root / "model")
    data = root / "ref"
    reference(load_config("tiny"), ReferencePaths(build_tiny_pairs(root / "pairs"), str(model), data))
    return model, data


def history(out: Path) -> list[dict[str, float]]:
    return json.loads((out / "metrics.json").read_text())["history"]


def test_two_processes_zero3_match_one_process_zero2(world: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = world
    one = load_config("tiny", [*COMMON, "train.micro_batch_size=8", "train.zero_stage=2"])
    two = load_config("tiny", [*COMMON, "train.micro_batch_size=4", "train.num_processes=2",
                               "train.zero_stage=3"])
    run(one, TrainPaths(data=data, model=str(model), out=tmp_path / "one"))
    result = run(two, TrainPaths(data=data, model=str(model), out=tmp_path / "two"))
    assert result["world_size"] == 2
    h1, h2 = history(tmp_path / "one"), history(tmp_path / "two")
    for key in ("loss", "rewards/margin", "running_gap", "kept"):
        assert [h[key] for h in h2] == pytest.approx([h[key] for h in h1], abs=1e-5), key
    assert h2[-1]["loss"] < h2[0]["loss"]
    AutoModelForImageTextToText.from_pretrained(tmp_path / "two" / "model")  # ZeRO-3 weights consolidated


def test_two_processes_zero3_select_a_candidate_on_rank_0(world: tuple[Path, Path], tmp_path: Path) -> None:
    """Every rank gathers each candidate's ZeRO-3 shards; rank 0 alone evaluates them and chooses,
    while the other rank has already left (no barrier waits on the evaluation)."""
    model, data = world
    config = load_config("tiny", [
        *COMMON[:-1], "train.micro_batch_size=4", "train.num_processes=2", "train.zero_stage=3",
        "train.select.benchmark=tiny_world", f"train.select.data={build_selection_images(tmp_path / 'sel')}",
        "train.select.from_step=1", "train.select.every=1", "train.select.metric=tiny_world.avg_length",
        "train.select.mode=max", "train.select.floor={}", "evaluate.max_new_tokens=4"])
    result = run(config, TrainPaths(data=data, model=str(model), out=tmp_path / "out"))
    record = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert result["world_size"] == 2 and result["selected_step"] == record["step"]
    assert [c["step"] for c in record["candidates"]] == [1, 2, 3]
    chosen = tmp_path / "out" / "candidates" / f"step-{record['step']:08d}" / "model" / "model.safetensors"
    assert (tmp_path / "out" / "model" / "model.safetensors").read_bytes() == chosen.read_bytes()
    AutoModelForImageTextToText.from_pretrained(tmp_path / "out" / "model")  # ZeRO-3 weights consolidated
