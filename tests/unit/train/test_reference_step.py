"""Step reference: adds the reference model's summed log-probs as columns, carries everything else."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from damo.data.dataset import PreferenceDataset
from damo.models import load_model, load_processor
from damo.train.batch import collate_pairs
from damo.train.logps import PairLogps


def test_reference_columns_hold_the_models_summed_logps(tiny_pairs: Path, tiny_llava: Path,
                                                        tiny_reference_pairs: Path) -> None:
    out = PreferenceDataset(tiny_reference_pairs)
    rows = out.read().to_pylist()
    src = PreferenceDataset(tiny_pairs).read().to_pylist()
    model = load_model(tiny_llava, "fp32").eval()
    with torch.no_grad():
        chosen, rejected = PairLogps(model, 64)(collate_pairs(load_processor(tiny_llava), rows[:5]))
    torch.testing.assert_close([r["reference_chosen_logps"] for r in rows[:5]], chosen.double().tolist())
    torch.testing.assert_close([r["reference_rejected_logps"] for r in rows[:5]], rejected.double().tolist())
    assert all(r["reference_chosen_logps"] < 0 for r in rows)
    # every other column, the row order and the statistics ride through untouched
    for a, b in zip(src, rows):
        assert {k: b[k] for k in a} == a
    source_statistics = PreferenceDataset(tiny_pairs).manifest.statistics
    assert out.manifest.statistics["delta_mean"] == source_statistics["delta_mean"]


def test_the_step_writes_its_config_and_result(tiny_reference_pairs: Path) -> None:
    result = json.loads((tiny_reference_pairs / "result.json").read_text())
    assert result["rows"] == 32
    assert result["columns"] == ["reference_chosen_logps", "reference_rejected_logps"]
    assert (tiny_reference_pairs / "config.yaml").is_file()
    report = PreferenceDataset(tiny_reference_pairs).manifest.reports["reference"]
    assert report["model"].endswith("model")
    assert report["rejected_tokens"] == "all"  # what training checks its own setting against
