"""On the tiny world with its pre-trained CLIP, easy pairs get a larger δ than hard ones.

The world's ``hardness`` column is measured: a pair is hard when the SFT policy prefers its true
answer by less than 1 nat, or CLIP does not prefer it (damo.tinyworld.hardness) — in practice most
wrong-shape pairs. δ (the score step) and the CLIP half of that rule share the CLIP, so part of the
separation is by construction; the SFT half is independent of it. Measured on the ``tiny`` preset
world (3000 pairs, fp32): mean δ easy 0.986 vs hard 0.411, AUC 0.973; on the first 400 pairs, which
this test scores to stay fast: 0.987 vs 0.515 (324 easy, 76 hard), AUC 0.970. (With the old
construction-based label, hard = any wrong attribute: 0.999 vs 0.770, AUC 0.773.)
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
    assert easy.mean() > hard.mean() + 0.3, (easy.mean(), hard.mean())
    assert auc(easy, hard) > 0.9, auc(easy, hard)
