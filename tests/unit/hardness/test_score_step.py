"""``damo score``: CLIP hardness columns, δ̄ with provenance, histogram, speed path = reference path."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from damo.cli import main
from damo.config import DamoConfig, load_config
from damo.data.dataset import PreferenceDataset
from damo.steps.score import HISTOGRAM, ScorePaths, run
from tests.unit.hardness.conftest import CONTEXT


def _config(clip_folder: Path, **score: object) -> DamoConfig:
    overrides = [
        f"score.clip_model={clip_folder}",
        "score.clip_pretrained=null",
        "score.batch_size=4",
        "score.num_workers=0",
        "score.precision=fp32",  # the reference below is open_clip's own fp32 model
        *(f"score.{k}={v}" for k, v in score.items()),
    ]
    return load_config(None, overrides)


def _rows(folder: Path) -> list[dict]:
    return list(PreferenceDataset(folder, verify=True).iter_rows())


def _reference_delta(clip_folder: Path, row: dict) -> float:
    """Score one pair alone, the obvious way: the naive loop the fast path must agree with."""
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{clip_folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{clip_folder}")
    with torch.no_grad():
        image = model.encode_image(
            preprocess(Image.open(io.BytesIO(row["image"])).convert("RGB"))[None], normalize=True
        )
        texts = model.encode_text(tokenizer(row["chosen_sub"] + row["rejected_sub"]), normalize=True)
        scores = torch.softmax(model.logit_scale.exp() * (texts @ image[0]), dim=0)
    n = len(row["chosen_sub"])
    return float(scores[:n].sum() - scores[n:].sum())


def test_adds_hardness_columns_and_keeps_everything_else(
    small_dataset: Path, clip_folder: Path, tmp_path: Path
):
    run(_config(clip_folder), ScorePaths(small_dataset, tmp_path / "scored"))
    before, after = _rows(small_dataset), _rows(tmp_path / "scored")
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after):
        assert {k: new[k] for k in old} == old  # every input column carried untouched (hardness too)
        assert len(new["chosen_sub"]) == len(new["chosen_sub_scores"]) >= 1
        assert len(new["rejected_sub"]) == len(new["rejected_sub_scores"]) >= 1
        assert sum(new["chosen_sub_scores"]) + sum(new["rejected_sub_scores"]) == pytest.approx(1.0, abs=1e-5)
        assert new["chosen_clip"] == pytest.approx(sum(new["chosen_sub_scores"]), abs=1e-6)
        assert new["delta"] == pytest.approx(new["chosen_clip"] - new["rejected_clip"], abs=1e-6)
        assert "".join(new["chosen_sub"]).replace(" ", "") == old["chosen"].replace(" ", "")
    # Long responses were split to fit the tiny context rather than truncated.
    tokenizer = open_clip.SimpleTokenizer(context_length=CONTEXT)
    assert max(len(r["chosen_sub"]) for r in after) > 1
    assert all(len(tokenizer.encode(s)) + 2 <= CONTEXT for r in after for s in r["chosen_sub"])
    for row in after[:3]:
        assert row["delta"] == pytest.approx(_reference_delta(clip_folder, row), abs=1e-5)


def test_delta_mean_is_the_train_mean_with_provenance(small_dataset: Path, clip_folder: Path, tmp_path: Path):
    out = tmp_path / "scored"
    result = run(_config(clip_folder), ScorePaths(small_dataset, out))
    rows = _rows(out)
    train = [r["delta"] for r in rows if r["split"] == "train"]
    stat = PreferenceDataset(out).manifest.statistics["delta_mean"]
    assert stat["value"] == pytest.approx(float(np.mean(train))) == pytest.approx(result["delta_mean"])
    prov = stat["provenance"]
    assert (prov["clip_model"], prov["clip_pretrained"], prov["score"], prov["split"], prov["rows"]) == (
        str(clip_folder),
        None,
        "softmax",
        "train",
        len(train),
    )
    assert prov["dataset_checksum"] == PreferenceDataset(small_dataset).manifest.checksum
    assert len(prov["weights_sha256"]) == 64
    assert (out / HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "result.json").read_text())["pairs"] == len(rows) == result["pairs"]
    assert (out / "config.yaml").is_file()
    assert result["delta_min"] <= result["delta_median"] <= result["delta_max"]


def test_workers_and_batch_size_do_not_change_the_scores(
    small_dataset: Path, clip_folder: Path, tmp_path: Path
):
    run(_config(clip_folder), ScorePaths(small_dataset, tmp_path / "a"))
    run(_config(clip_folder, num_workers=2, batch_size=3), ScorePaths(small_dataset, tmp_path / "b"))
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["id"] for r in a] == [r["id"] for r in b]
    np.testing.assert_allclose([r["delta"] for r in a], [r["delta"] for r in b], atol=1e-5)
    run(_config(clip_folder, num_workers=2, batch_size=3), ScorePaths(small_dataset, tmp_path / "c"))
    assert [r["delta"] for r in _rows(tmp_path / "c")] == [r["delta"] for r in b]  # bit-for-bit rerun


def test_repeated_images_and_sentences_are_encoded_once(
    small_dataset: Path, clip_folder: Path, tmp_path: Path
):
    cached = run(_config(clip_folder), ScorePaths(small_dataset, tmp_path / "cached"))
    rows = _rows(tmp_path / "cached")
    texts = {s for r in rows for s in r["chosen_sub"] + r["rejected_sub"]}
    assert cached["images_encoded"] == len({r["image"] for r in rows}) == 6  # 20 pairs on 6 images
    assert cached["sub_sentences_encoded"] == len(texts)
    uncached = run(_config(clip_folder, feature_cache=0), ScorePaths(small_dataset, tmp_path / "uncached"))
    assert uncached["images_encoded"] > 6 and uncached["sub_sentences_encoded"] > len(texts)
    np.testing.assert_allclose(
        [r["delta"] for r in rows], [r["delta"] for r in _rows(tmp_path / "uncached")], atol=1e-6
    )


def test_bf16_towers_stay_close_to_fp32(small_dataset: Path, clip_folder: Path, tmp_path: Path):
    run(_config(clip_folder, precision="bf16"), ScorePaths(small_dataset, tmp_path / "bf16"))
    run(_config(clip_folder), ScorePaths(small_dataset, tmp_path / "fp32"))
    bf16, fp32 = _rows(tmp_path / "bf16"), _rows(tmp_path / "fp32")
    provenance = PreferenceDataset(tmp_path / "bf16").manifest.statistics["delta_mean"]["provenance"]
    assert provenance["dtype"] == "bfloat16"
    gap = np.abs(np.array([r["delta"] for r in bf16]) - np.array([r["delta"] for r in fp32]))
    # bf16 keeps 8 significant bits: ~0.4% per feature; δ ∈ [-2, 2] moves by a few hundredths at most.
    assert 0 < gap.max() < 0.05, gap.max()  # not the fp32 path; the softmax still runs in fp32
    run(_config(clip_folder, precision="bf16"), ScorePaths(small_dataset, tmp_path / "bf16-again"))
    assert [r["delta"] for r in _rows(tmp_path / "bf16-again")] == [r["delta"] for r in bf16]  # deterministic


def test_cosine_mode_stores_raw_cosines(small_dataset: Path, clip_folder: Path, tmp_path: Path):
    run(_config(clip_folder, score="cosine"), ScorePaths(small_dataset, tmp_path / "cos"))
    for row in _rows(tmp_path / "cos"):
        assert all(-1.0 <= s <= 1.0 for s in row["chosen_sub_scores"] + row["rejected_sub_scores"])
        assert row["chosen_clip"] == pytest.approx(sum(row["chosen_sub_scores"]), abs=1e-6)


def test_cli_verb_scores_a_dataset(small_dataset: Path, clip_folder: Path, tmp_path: Path, capsys):
    code = main(
        [
            "score",
            "--data",
            str(small_dataset),
            "--out",
            str(tmp_path / "cli"),
            "--set",
            f"score.clip_model={clip_folder}",
            "--set",
            "score.clip_pretrained=null",
            "--set",
            "score.num_workers=0",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["pairs"] == 20 and printed["step"] == "score"
