"""The effect DAMA training exists for, on the pre-trained tiny world: after training, the policy
ranks chosen over rejected on held-out pairs more often than the SFT policy it started from — by its
log-ratio margin against that SFT (reference) policy, DPO's eval reward accuracy — and separates them by
a wider log-prob margin.

(One seed, one arm; ``benchmarks/tiny_effect.py`` measures dpo vs dama over several seeds, with
hallucination rates.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.config import load_config
from damo.data.dataset import DatasetWriter, PreferenceDataset
from damo.steps.reference import ReferencePaths
from damo.steps.reference import run as reference
from damo.steps.score import ScorePaths
from damo.steps.score import run as score
from damo.steps.train import TrainPaths, run
from damo.train.heldout import heldout_preference

pytestmark = pytest.mark.integration

STEPS = 40  # of 8 pairs each: one epoch of the subset below
TRAIN_PAIRS, VALIDATION_PAIRS = 320, 128  # a subset of the world's pairs keeps scoring and reference short


def subset(world: Path, out: Path) -> Path:
    source = PreferenceDataset(world / "data")
    writer = DatasetWriter(out, schema=source.schema)
    writer.write_table(source.read(split="train").slice(0, TRAIN_PAIRS))
    writer.write_table(source.read(split="validation").slice(0, VALIDATION_PAIRS))
    writer.close()
    return out


def test_dama_training_raises_held_out_preference_accuracy(tiny_world: Path, tmp_path: Path) -> None:
    config = load_config("tiny", [
        f"score.clip_model={tiny_world / 'clip'}", "score.clip_pretrained=null", "train.loss.arm=dama",
        f"train.max_steps={STEPS}", f"train.save_steps={STEPS}", "train.global_batch_size=8",
        "train.micro_batch_size=8", "train.select.benchmark=null"])
    score(config, ScorePaths(data=subset(tiny_world, tmp_path / "pairs"), out=tmp_path / "scored"))
    reference(config, ReferencePaths(data=tmp_path / "scored", model=str(tiny_world / "policy"),
                                     out=tmp_path / "ref"))
    policy = str(tiny_world / "policy")
    result = run(config, TrainPaths(data=tmp_path / "ref", model=policy, out=tmp_path / "out"))

    def measure(model: Path) -> dict[str, float]:
        return heldout_preference(model, tmp_path / "ref", batch_size=64, chunk_tokens=4096)

    before, after = measure(tiny_world / "policy"), measure(Path(result["model"]))
    assert after["reward_accuracy"] > before["reward_accuracy"] + 0.1, (before, after)
    assert after["margin"] > before["margin"], (before, after)
