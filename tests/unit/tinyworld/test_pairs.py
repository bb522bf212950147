"""Pairs of the tiny world: chosen is the truth, rejected adds exactly one absent word (or, for an
omission, stops one shape early); chosen noise invents one absent object in both answers of a share
of the pairs; label noise swaps a configured share of the training pairs only; hardness is a
measurement, not the edit kind."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from damo.config import TinyWorldConfig
from damo.tinyworld.hardness import classify
from damo.tinyworld.images import random_scene
from damo.tinyworld.pairs import (
    all_rejections,
    noisy_caption,
    pair_rows,
    true_and_hallucinating,
    true_description,
    with_omission,
    with_wrong_attribute,
)
from damo.tinyworld.vocab import HALLUCINATED_OBJECTS, Scene, Shape, describe, mentioned

CFG = TinyWorldConfig(num_pairs=200, chosen_noise=0.0)


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
    plain = list(pair_rows(TinyWorldConfig(num_pairs=2000, omission_fraction=0.0, chosen_noise=0.0), seed=0))
    mixed = list(pair_rows(TinyWorldConfig(num_pairs=2000, omission_fraction=0.5, chosen_noise=0.0), seed=0))
    multi = [(p, m) for (scene, p), (_, m) in zip(plain, mixed) if len(scene.shapes) > 1]
    share = sum(m["kind"] == "omission" for _, m in multi) / len(multi)
    assert 0.45 < share < 0.55, share
    assert "omission" not in {p["kind"] for _, p in plain}
    for (s_plain, p), (s_mixed, m) in zip(plain, mixed):  # same scenes, questions and other edits
        assert s_plain == s_mixed and p["image"] == m["image"] and p["question"] == m["question"]
        assert m["kind"] == "omission" or m == p
        assert len(s_mixed.shapes) > 1 or m["kind"] != "omission"


def test_chosen_noise_invents_one_object_in_both_answers_and_keeps_every_preference() -> None:
    clean = list(pair_rows(TinyWorldConfig(num_pairs=2000, chosen_noise=0.0), seed=0))
    noisy = list(pair_rows(TinyWorldConfig(num_pairs=2000, chosen_noise=0.4), seed=0))
    share = sum(n["invented"] is not None for _, n in noisy) / len(noisy)
    assert 0.37 < share < 0.43, share
    assert {n["split"] for _, n in noisy if n["invented"]} == {"train", "validation"}
    for (scene, c), (same_scene, n) in zip(clean, noisy):
        assert scene == same_scene and c["image"] == n["image"] and c["kind"] == n["kind"]
        assert true_description(n) == true_description(c) == c["chosen"] == describe(scene)
        if n["invented"] is None:
            assert n == c
            continue
        obj = n["invented"]
        assert obj in HALLUCINATED_OBJECTS and obj not in mentioned(c["chosen"]) | mentioned(c["rejected"])
        # the chosen answer hallucinates now, and the rejected one still has its one edit more
        assert mentioned(n["chosen"]) == mentioned(c["chosen"]) | {obj}
        assert mentioned(n["rejected"]) == mentioned(c["rejected"]) | {obj}
        assert n["chosen"].endswith(f" and a {obj}.") and n["rejected"].endswith(f" and a {obj}.")
        assert n["hallucinated"] == [*c["hallucinated"], obj]


def test_true_description_undoes_label_noise_and_chosen_noise_together() -> None:
    rows = [row for _, row in pair_rows(TinyWorldConfig(num_pairs=600, chosen_noise=0.5, label_noise=0.4),
                                        seed=1)]
    both = [r for r in rows if r["swapped"] and r["invented"]]
    assert both  # the case exists in this draw
    for (scene, _), row in zip(pair_rows(TinyWorldConfig(num_pairs=600, chosen_noise=0.5, label_noise=0.4),
                                         seed=1), rows):
        assert true_description(row) == describe(scene)


def test_a_one_shape_scene_cannot_get_an_omission() -> None:
    with pytest.raises(ValueError, match="nothing to leave out"):
        with_omission(Scene((Shape("red", "circle", 10, 10, 5),)))


def test_noisy_captions_hallucinate_at_the_configured_rate() -> None:
    rng = random.Random(0)
    scene = random_scene(rng, 48, 2, TinyWorldConfig().shape_size)
    captions = [noisy_caption(scene, rng, noise=0.4) for _ in range(2000)]
    rate = sum(bool(mentioned(c) & set(HALLUCINATED_OBJECTS)) for c in captions) / len(captions)
    assert 0.35 < rate < 0.45


def test_shape_noise_names_one_shape_with_another_kind_at_the_configured_rate() -> None:
    rng = random.Random(0)
    scene = Scene((Shape("red", "circle", 10, 10, 9), Shape("blue", "square", 34, 10, 9)))
    captions = [noisy_caption(scene, rng, noise=0.0, shape_noise=0.3) for _ in range(3000)]
    wrong = [c for c in captions if c != describe(scene)]
    assert 0.27 < len(wrong) / len(captions) < 0.33
    for c in wrong:  # exactly one shape renamed, colours and order kept, never to its own kind
        kinds = [p.split()[-1] for p in c.removeprefix("There is ").rstrip(".").split(" and ")]
        assert c.count("red") == c.count("blue") == 1
        assert (kinds[0] != "circle") + (kinds[1] != "square") == 1


def test_without_shape_noise_the_captions_are_drawn_as_before() -> None:
    """shape_noise=0 makes no extra draw, so worlds built without it keep their SFT captions."""
    scene = random_scene(random.Random(1), 48, 2, TinyWorldConfig().shape_size)
    old, new = random.Random(5), random.Random(5)
    assert ([noisy_caption(scene, old, 0.4) for _ in range(200)]
            == [noisy_caption(scene, new, 0.4, shape_noise=0.0) for _ in range(200)])


def test_shape_size_sets_the_drawn_half_sizes() -> None:
    rng = random.Random(0)
    radii = [s.radius for _ in range(300) for s in random_scene(rng, 48, 2, (0.19, 0.23)).shapes]
    assert min(radii) == 9 and max(radii) == 11  # round(0.19·48), and the two-shape column's cap


@pytest.mark.parametrize("size", [(0.3, 0.2), (0.0, 0.1), (0.2, 0.6)])
def test_shape_size_out_of_range_is_refused(size: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="shape_size"):
        TinyWorldConfig(shape_size=size)


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


def test_label_noise_kinds_swap_only_those_kinds_and_leave_the_other_pairs_as_without_noise() -> None:
    """Every pair takes its draw whatever its kind, so the colour pairs swapped with both kinds named
    are exactly those swapped with only colour named, and no other pair moves."""
    cfg = TinyWorldConfig(num_pairs=2000, label_noise=0.4)
    every = [row for _, row in pair_rows(cfg, seed=0)]
    colour = [row for _, row in pair_rows(cfg.model_copy(update={"label_noise_kinds": ("wrong_colour",)}), 0)]
    both = [row for _, row in pair_rows(cfg.model_copy(
        update={"label_noise_kinds": ("wrong_colour", "extra_object")}), 0)]
    assert {r["kind"] for r in colour if r["swapped"]} == {"wrong_colour"}
    assert {r["kind"] for r in both if r["swapped"]} == {"wrong_colour", "extra_object"}
    for e, c, b in zip(every, colour, both):
        assert c["swapped"] == (e["swapped"] and e["kind"] == "wrong_colour")
        assert b["swapped"] == (e["swapped"] and e["kind"] in ("wrong_colour", "extra_object"))
    train_colour = [r for r in colour if r["split"] == "train" and r["kind"] == "wrong_colour"]
    assert 0.35 < sum(r["swapped"] for r in train_colour) / len(train_colour) < 0.45


@pytest.mark.parametrize("kinds", [(), ("extra_object", "wrong_size")])
def test_label_noise_kinds_must_name_known_kinds(kinds) -> None:
    with pytest.raises(ValidationError, match="label_noise_kinds"):
        TinyWorldConfig(label_noise=0.3, label_noise_kinds=kinds)


@pytest.mark.parametrize(("clip_margin", "sft_margin", "expected"), [
    (0.2, 5.0, "easy"),    # both judges clearly prefer the truth
    (0.2, 0.5, "hard"),    # the SFT policy barely prefers it (below 1 nat)
    (0.2, -2.0, "hard"),   # the SFT policy ranks it wrong
    (-0.01, 5.0, "hard"),  # CLIP ranks it wrong
])
def test_a_pair_is_hard_when_either_judge_barely_prefers_the_truth(clip_margin, sft_margin, expected) -> None:
    assert classify(clip_margin, sft_margin, hard_margin=1.0) == expected


def test_phrases_inverts_caption_and_refuses_other_text() -> None:
    from damo.tinyworld.vocab import caption, phrases

    for parts in (["a red circle"], ["a red circle", "a blue square", "a dog"]):
        assert phrases(caption(parts)) == parts
    for bad in ("Hello.", "There is ", "There is a red circle"):
        with pytest.raises(ValueError, match="not a tiny-world caption"):
            phrases(bad)
