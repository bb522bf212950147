"""Scoring on a GPU (half precision, pinned DataLoader batches) agrees with the CPU float32 scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from damo.config import load_config
from damo.data.dataset import PreferenceDataset
from damo.steps.score import ScorePaths, run
from tests.unit.hardness.conftest import make_clip_folder, make_small_dataset

pytestmark = pytest.mark.gpu


def test_half_precision_gpu_scores_match_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    clip_folder, small_dataset = make_clip_folder(tmp_path / "clip"), make_small_dataset(tmp_path)
    overrides = [
        f"score.clip_model={clip_folder}",
        "score.clip_pretrained=null",
        "score.num_workers=2",
        "score.batch_size=8",
    ]
    gpu = run(load_config(None, overrides), ScorePaths(small_dataset, tmp_path / "gpu"))
    monkeypatch.setattr("damo.hardness.clip.choose_device", lambda: torch.device("cpu"))
    cpu_fp32 = load_config(None, [*overrides, "score.precision=fp32"])
    run(cpu_fp32, ScorePaths(small_dataset, tmp_path / "cpu"))
    provenance = PreferenceDataset(tmp_path / "gpu").manifest.statistics["delta_mean"]["provenance"]
    assert provenance["dtype"] == "float16"
    on_gpu = [r["delta"] for r in PreferenceDataset(tmp_path / "gpu").iter_rows(["delta"])]
    on_cpu = [r["delta"] for r in PreferenceDataset(tmp_path / "cpu").iter_rows(["delta"])]
    assert on_gpu == pytest.approx(on_cpu, abs=2e-2)
    assert gpu["pairs"] == len(on_cpu)
