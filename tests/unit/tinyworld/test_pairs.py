"""Pairs of the tiny world: chosen is the truth, rejected adds exactly one absent word (or, for an
omission, stops one shape early); label noise swaps a configured share of the training pairs only;
hardness is a measurement, not the edit kind."""

from __future__ import annotations

import random

import pytest

from damo.config import TinyWorldConfig
from damo.tinyworld.hardness import classify
from damo.tinyworld.images import random_scene
from damo.tinyworld.pairs import (
    all_rejections,
    noisy_caption,
    pair_rows,
    true_and_hallucinating,
    with_omission,
    with_wrong_attribute,
)
from damo.tinyworld.vocab import HALLUCINATED_OBJECTS, Scene, Shape, describe, mentioned

CFG = TinyWorldConfig(num_pairs=200)


def test_chosen_is_the_truth_and_rejected_adds_one_absent_word() -> None:
    for scene, row in pair_rows(CFG, seed=3):
        assert mentioned(row["chosen"]) == set(row["truth"]) == set(scene.truth)
        assert row["rejected"] != row["chosen"]
        if row["kind"] == "omission":  # the truth, stopped one shape early: nothing absent is named
            assert row["rejected"] == describe(Scene(scene.shapes[:-1])) and row["hallucinated"] == []
            continue
        absent = mentioned(row["rejected"]) - set(row["truth"])
        assert absent == set(row["hallucinated"]) and len(absent) == 1
        assert not row["swapped"]
        assert row["hardness"] is None  # measured later, by the build, with the trained models


def test_all_kinds_and_both_splits_occur() -> None:
    rows = [row for _, row in pair_rows(CFG, seed=0)]
    assert {r["kind"] for r in rows} == {"extra_object", "wrong_colour", "wrong_shape", "omission"}
    assert {r["split"] for r in rows} == {"train", "validation"}


def test_omissions_replace_that_share_of_multi_shape_rejections_and_move_no_scene() -> None:
    plain = list(pair_rows(TinyWorldConfig(num_pairs=2000, omission_fraction=0.0), seed=0))
    mixed = list(pair_rows(TinyWorldConfig(num_pairs=2000, omission_fraction=0.5), seed=0))
    multi = [(p, m) for (scene, p), (_, m) in zip(plain, mixed) if len(scene.shapes) > 1]
    share = sum(m["kind"] == "omission" for _, m in multi) / len(multi)
    assert 0.45 < share < 0.55, share
    assert "omission" not in {p["kind"] for _, p in plain}
    for (s_plain, p), (s_mixed, m) in zip(plain, mixed):  # same scenes, questions and other edits
        assert s_plain == s_mixed and p["image"] == m["image"] and p["question"] == m["question"]
        assert m["kind"] == "omission" or m == p
        assert len(s_mixed.shapes) > 1 or m["kind"] != "omission"


def test_a_one_shape_scene_cannot_get_an_omission() -> None:
    with pytest.raises(ValueError, match="nothing to leave out"):
        with_omission(Scene((Shape("red", "circle", 10, 10, 5),)))


def test_noisy_captions_hallucinate_at_the_configured_rate() -> None:
    rng = random.Random(0)
    scene = random_scene(rng, 48, 2)
    captions = [noisy_caption(scene, rng, noise=0.4) for _ in range(2000)]
    rate = sum(bool(mentioned(c) & set(HALLUCINATED_OBJECTS)) for c in captions) / len(captions)
    assert 0.35 < rate < 0.45


def test_all_rejections_are_distinct_single_edits() -> None:
    scene = Scene((Shape("red", "circle", 10, 10, 5), Shape("blue", "square", 30, 10, 5)))
    texts = [r.text for r in all_rejections(scene)]
    assert len(texts) == len(set(texts)) and describe(scene) not in texts
    # 6 objects + per shape (2 absent colours + 1 absent shape kind)
    assert len(texts) == len(HALLUCINATED_OBJECTS) + 2 * (2 + 1)


def test_a_scene_with_every_colour_and_shape_cannot_get_a_wrong_attribute() -> None:
    shapes = tuple(Shape(c, s, 0, 0, 1) for c, s in
                   [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "circle")])
    with pytest.raises(ValueError, match="no absent attribute"):
        with_wrong_attribute(Scene(shapes), random.Random(0))


def test_label_noise_swaps_that_share_of_training_pairs_and_no_validation_pair() -> None:
    clean = [row for _, row in pair_rows(TinyWorldConfig(num_pairs=2000), seed=0)]
    noisy = [row for _, row in pair_rows(TinyWorldConfig(num_pairs=2000, label_noise=0.3), seed=0)]
    train = [r for r in noisy if r["split"] == "train"]
    share = sum(r["swapped"] for r in train) / len(train)
    assert 0.26 < share < 0.34, share
    assert not any(r["swapped"] for r in noisy if r["split"] == "validation")
    for c, n in zip(clean, noisy):  # same scenes and edits; swapped pairs exchange the two answers
        assert c["image"] == n["image"] and c["kind"] == n["kind"]
        assert true_and_hallucinating(n) == (c["chosen"], c["rejected"])
        assert (n["chosen"], n["rejected"]) == ((c["rejected"], c["chosen"]) if n["swapped"]
                                                else (c["chosen"], c["rejected"]))


@pytest.mark.parametrize(("clip_margin", "sft_margin", "expected"), [
    (0.2, 5.0, "easy"),    # both judges clearly prefer the truth
    (0.2, 0.5, "hard"),    # the SFT policy barely prefers it (below 1 nat)
    (0.2, -2.0, "hard"),   # the SFT policy ranks it wrong
    (-0.01, 5.0, "hard"),  # CLIP ranks it wrong
])
def test_a_pair_is_hard_when_either_judge_barely_prefers_the_truth(clip_margin, sft_margin, expected) -> None:
    assert classify(clip_margin, sft_margin, hard_margin=1.0) == expected
