"""benchmarks/tiny_effect.py: its noisy dataset is the one a noisy world would have, and arms are
compared at matched drift (an arm cannot win by moving further from the reference)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from damo.config import load_config
from damo.data.dataset import PreferenceDataset
from damo.tinyworld import build

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import tiny_effect
import tiny_effect_levels

QUICK = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
         "tiny_world.eval_images=8", "tiny_world.selection_images=8")


@pytest.mark.parametrize("kinds", [None, ["extra_object"]])
def test_noisy_copy_equals_the_dataset_of_a_world_built_with_label_noise(tiny_world_quick: Path,
                                                                          tmp_path: Path, kinds) -> None:
    noise = ["tiny_world.label_noise=0.3"] + ([f"tiny_world.label_noise_kinds={kinds}"] if kinds else [])
    build(load_config("tiny", (*QUICK, *noise)), tmp_path / "noisy-world")
    built = PreferenceDataset(tmp_path / "noisy-world" / "data").read().to_pylist()
    copy = tiny_effect.noisy_copy(tiny_world_quick, 0.3, tmp_path / "copy", kinds)
    copied = PreferenceDataset(copy).read().to_pylist()
    assert copied == built
    assert any(r["swapped"] for r in copied)
    assert not any(r["swapped"] for r in copied if r["split"] == "validation")
    assert all(r["kind"] in (kinds or [r["kind"]]) for r in copied if r["swapped"])


def test_interpolation_is_linear_between_points_and_undefined_outside() -> None:
    curve = [(2.0, 0.1), (0.0, 0.4), (0.5, 0.2)]
    assert tiny_effect.interpolate(curve, 1.25) == pytest.approx(0.15)
    assert tiny_effect.interpolate(curve, 0.5) == pytest.approx(0.2)
    assert tiny_effect.interpolate(curve, 3.0) is None


def test_matched_drift_compares_at_the_dpo_runs_kl() -> None:
    """dama reaches 0.2 at KL 0.5 and 0.1 at KL 2: at dpo's KL 1.25 it stands at 0.15. dpo's 0.18
    there loses, although dama's own 80-step run (0.2) has a higher rate than dpo's."""
    runs = {
        "dama-80": {"arm": "dama", "seed": 0, "steps": 80, "kl": 0.5, tiny_effect.HEADLINE: 0.2},
        "dama-160": {"arm": "dama", "seed": 0, "steps": 160, "kl": 2.0, tiny_effect.HEADLINE: 0.1},
        "dpo-80": {"arm": "dpo", "seed": 0, "steps": 80, "kl": 1.25, tiny_effect.HEADLINE: 0.18},
        "dpo-160": {"arm": "dpo", "seed": 0, "steps": 160, "kl": 4.0, tiny_effect.HEADLINE: 0.05},
    }
    rows = tiny_effect.matched_drift(runs, {tiny_effect.HEADLINE: 0.4}, "dama")
    assert [(r["steps"], r["wins"]) for r in rows] == [(80, True), (160, None)]  # 160: beyond dama's KL
    assert rows[0]["dama"] == pytest.approx(0.15) and rows[0]["drift"] == 1.25


def test_mean_gap_is_the_average_vertical_distance_over_the_shared_range() -> None:
    """Both arms interpolated alike: the gap equals a dense numerical average of dama − dpo on
    [0, 2] (dama's largest KL), and is symmetric in the two arms."""
    runs = {
        "dama-80": {"arm": "dama", "seed": 0, "steps": 80, "kl": 0.5, tiny_effect.HEADLINE: 0.2},
        "dama-160": {"arm": "dama", "seed": 0, "steps": 160, "kl": 2.0, tiny_effect.HEADLINE: 0.1},
        "dpo-80": {"arm": "dpo", "seed": 0, "steps": 80, "kl": 1.25, tiny_effect.HEADLINE: 0.18},
        "dpo-160": {"arm": "dpo", "seed": 0, "steps": 160, "kl": 4.0, tiny_effect.HEADLINE: 0.05},
    }
    before = {tiny_effect.HEADLINE: 0.4}
    [row] = tiny_effect.mean_gap(runs, before, "dama")
    dama = tiny_effect.curve(runs, before, "dama", 0, "kl")
    dpo = tiny_effect.curve(runs, before, "dpo", 0, "kl")
    xs = [2.0 * (i + 0.5) / 20000 for i in range(20000)]
    dense = sum(tiny_effect.interpolate(dama, x) - tiny_effect.interpolate(dpo, x) for x in xs) / len(xs)
    assert row["range"] == [0.0, 2.0] and row["gap"] == pytest.approx(dense, abs=1e-6)
    assert row["wins"] is True
    [mirror] = tiny_effect.mean_gap({k: {**r, "arm": "dpo" if r["arm"] == "dama" else "dama"}
                                     for k, r in runs.items()}, before, "dama")
    assert mirror["gap"] == pytest.approx(-row["gap"])


def test_at_floor_takes_each_arms_lowest_rate_among_its_well_formed_runs() -> None:
    """dama's 160-step run is lower but below the floor; its 80-step run is the one that counts. dpo's
    longest run is still well-formed, so its curve is open (more steps might go lower)."""
    wf = tiny_effect.WELL_FORMED
    runs = {
        "dama-80": {"arm": "dama", "seed": 0, "steps": 80, tiny_effect.HEADLINE: 0.12, wf: 0.93},
        "dama-160": {"arm": "dama", "seed": 0, "steps": 160, tiny_effect.HEADLINE: 0.05, wf: 0.80},
        "dpo-80": {"arm": "dpo", "seed": 0, "steps": 80, tiny_effect.HEADLINE: 0.20, wf: 0.95},
        "dpo-160": {"arm": "dpo", "seed": 0, "steps": 160, tiny_effect.HEADLINE: 0.15, wf: 0.92},
    }
    [row] = tiny_effect.at_floor(runs, "dama", 0.9)
    assert row["dama"] == {"rate": 0.12, "steps": 80, "open": False}
    assert row["dpo"] == {"rate": 0.15, "steps": 160, "open": True}
    assert row["wins"] is True


def test_every_arm_is_a_valid_config_and_the_controls_say_what_they_train() -> None:
    objectives = {arm: load_config("tiny", [*tiny_effect.BASE, *overrides]).train.loss.objective
                  for arm, overrides in tiny_effect.ARMS.items()}
    assert objectives["dama"] == objectives["dama_running_std"] == "dama"
    assert objectives["sft_chosen"] == "1·nll(chosen)"  # no preference at all: the control
    assert objectives["dama_nll"] == "dama + 1·nll(chosen)"
    assert objectives["dama_fork"] == "dama (rejected answers through their fork)"
    # …and that arm trains on reference columns summed over the same rejected tokens.
    assert tiny_effect.rejected_tokens("dama_fork") == "through_fork"
    assert tiny_effect.rejected_tokens("dama") == "all"


def effect_file(path: Path, checksum: str, level: str, arm: str, points: list[tuple[float, float]]) -> Path:
    runs = {f"{arm}-seed0-steps{i}": {"arm": arm, "seed": 0, "steps": i, "kl": kl, tiny_effect.HEADLINE: rate}
            for i, (kl, rate) in enumerate(points, start=1)}
    before = {tiny_effect.HEADLINE: 0.4, tiny_effect.WELL_FORMED: 0.95}
    level_results = {level: {"runs": runs, "before": before}}
    path.write_text(json.dumps({"world_checksum": checksum, "noise": level_results}))
    return path


def test_levels_compares_one_arm_across_two_noise_levels(tmp_path: Path, monkeypatch, capsys) -> None:
    """dpo with noise at 0.2 by KL 1 against clean dpo at 0.3: 0.1 lower at KL 1, 0.05 lower on
    average over [0, 1] (both curves start at the SFT model's 0.4)."""
    noisy = effect_file(tmp_path / "noisy.json", "w", "0.3", "dpo", [(1.0, 0.2)])
    clean = effect_file(tmp_path / "clean.json", "w", "0.0", "dpo", [(1.0, 0.3)])
    monkeypatch.setattr(sys, "argv", ["x", str(noisy), "0.3", "dpo", str(clean), "0.0", "dpo"])
    tiny_effect_levels.main()
    assert "seed 0: 0.000–1.000 -0.0500" in capsys.readouterr().out


def test_levels_refuses_two_worlds(tmp_path: Path, monkeypatch) -> None:
    one = effect_file(tmp_path / "one.json", "world-a", "0.0", "dpo", [(1.0, 0.2)])
    two = effect_file(tmp_path / "two.json", "world-b", "0.0", "dpo", [(1.0, 0.3)])
    monkeypatch.setattr(sys, "argv", ["x", str(one), "0.0", "dpo", str(two), "0.0", "dpo"])
    with pytest.raises(SystemExit, match="different worlds"):
        tiny_effect_levels.main()
