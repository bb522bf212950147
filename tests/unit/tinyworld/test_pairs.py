"""Pairs of the tiny world: chosen is the truth, rejected adds exactly one absent word."""

from __future__ import annotations

import random

import pytest

from damo.config import TinyWorldConfig
from damo.tinyworld.images import random_scene
from damo.tinyworld.pairs import all_rejections, noisy_caption, pair_rows, with_wrong_attribute
from damo.tinyworld.vocab import HALLUCINATED_OBJECTS, Scene, Shape, describe, mentioned

CFG = TinyWorldConfig(num_pairs=200)


def test_chosen_is_the_truth_and_rejected_adds_one_absent_word() -> None:
    for scene, row in pair_rows(CFG, seed=3):
        assert mentioned(row["chosen"]) == set(row["truth"]) == set(scene.truth)
        assert row["rejected"] != row["chosen"]
        absent = mentioned(row["rejected"]) - set(row["truth"])
        assert absent == set(row["hallucinated"]) and len(absent) == 1
        assert row["hardness"] == ("easy" if row["kind"] == "extra_object" else "hard")


def test_both_hardness_levels_and_all_kinds_occur() -> None:
    rows = [row for _, row in pair_rows(CFG, seed=0)]
    assert {r["hardness"] for r in rows} == {"easy", "hard"}
    assert {r["kind"] for r in rows} == {"extra_object", "wrong_colour", "wrong_shape"}
    assert {r["split"] for r in rows} == {"train", "validation"}


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
