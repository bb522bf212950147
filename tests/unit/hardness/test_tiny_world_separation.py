"""On the tiny world with its pre-trained CLIP, constructed-easy pairs get a larger δ than hard ones.

Easy pairs' rejected answers add an absent object; hard ones get a colour or shape wrong (the tiny
world's ``hardness`` column). Measured on the ``tiny`` preset world (3000 pairs; bf16 towers, the CI
box's ``auto``): mean δ easy 0.999 vs hard 0.769, AUC 0.774 (fp32: 0.999 vs 0.770, AUC 0.773); on
the first 400 pairs, which this test scores to stay fast: 0.999 vs 0.797, AUC 0.777.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from damo.config import load_config
from damo.data.dataset import DatasetWriter, PreferenceDataset
from damo.steps.score import ScorePaths, run

PAIRS = 400


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random easy δ > a random hard δ), ties counting half (the ROC AUC, Mann–Whitney form)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_easy_pairs_get_larger_delta_than_hard_pairs(tiny_world: Path, tmp_path: Path):
    world = PreferenceDataset(tiny_world / "data")
    writer = DatasetWriter(tmp_path / "subset", schema=world.schema)
    for i, row in enumerate(world.iter_rows()):
        if i == PAIRS:
            break
        writer.write(row)
    writer.close()
    config = load_config("tiny", [f"score.clip_model={tiny_world / 'clip'}", "score.num_workers=0"])
    run(config, ScorePaths(tmp_path / "subset", tmp_path / "scored"))

    rows = list(PreferenceDataset(tmp_path / "scored").iter_rows(["delta", "hardness"]))
    easy = np.array([r["delta"] for r in rows if r["hardness"] == "easy"])
    hard = np.array([r["delta"] for r in rows if r["hardness"] == "hard"])
    assert len(easy) > 50 and len(hard) > 50
    assert easy.mean() > hard.mean() + 0.1, (easy.mean(), hard.mean())
    assert auc(easy, hard) > 0.65, auc(easy, hard)
