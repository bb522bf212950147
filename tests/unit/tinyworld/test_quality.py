"""The pre-trained world is good enough to show what preference optimisation is for.

CLIP must separate shapes and colours (hardness scores mean something); the SFT policy must describe
images, yet keep a hallucination prior under sampling that DPO/DAMA can remove.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_pretrained_world_has_a_useful_clip_and_a_hallucinating_policy(tiny_world: Path) -> None:
    report = json.loads((tiny_world / "report.json").read_text())
    clip, sampled, greedy = report["clip"], report["policy"]["sampled"], report["policy"]["greedy"]
    assert report["benchmark_images"] >= 128
    # CLIP: far above chance at picking the true description among all its single-word edits,
    # and almost always prefers chosen over rejected on the held-out pairs.
    assert clip["clip_retrieval_accuracy"] > 4 * clip["clip_retrieval_chance"]
    assert clip["clip_retrieval_accuracy_easy"] > 0.9
    assert clip["clip_pair_accuracy"] > 0.85
    # Policy: describes images (some exact answers) but hallucinates under sampling, in a window
    # where preference optimisation can show an effect either way: the noisy-caption prior (extra
    # objects) survives sampling, while greedy decoding hides it (notes/tiny-world-probe.md).
    assert greedy["exact_rate"] > 0.2
    assert 0.1 < sampled["chair_i"] < 0.8
    assert 0.1 < sampled["extra_object_rate"] < 0.8
    assert greedy["extra_object_rate"] < sampled["extra_object_rate"]


def test_attribute_errors_well_formedness_and_length_are_counted_per_answer() -> None:
    from damo.tinyworld.quality import answer_stats

    truth, reference = ["circle", "red"], "There is a red circle."
    answers = ["There is a red circle.",            # exact
               "There is a red square and a dog.",  # wrong shape + extra object, still grammatical
               "There is a blue circle.",           # wrong colour
               "There is a red red circle"]         # broken: repeated word, no full stop
    stats = answer_stats(answers, [truth] * 4, [reference] * 4)
    assert stats["exact_rate"] == 0.25 and stats["extra_object_rate"] == 0.25
    assert stats["shape_error_rate"] == 0.25 and stats["colour_error_rate"] == 0.25
    assert stats["well_formed_rate"] == 0.75
    assert stats["mean_words"] == (5 + 8 + 5 + 6) / 4


@pytest.mark.slow
def test_hard_pairs_are_the_ones_the_sft_model_or_clip_barely_gets_right(tiny_world: Path) -> None:
    """Measured on the preset world (seed 0): 17.7% of pairs hard; 69% of wrong-shape pairs (the SFT
    model ranks 71% of them right, CLIP 85%), 0.1% of extra-object pairs, no wrong-colour pair (both
    judges rank all of those right): hardness is a property of what the models can see, not of the
    edit that made the pair."""
    measured = json.loads((tiny_world / "report.json").read_text())["pairs_measured"]
    assert 0.05 < measured["all"]["hard_share"] < 0.5
    assert measured["wrong_shape"]["hard_share"] > 0.5 > 0.05 > measured["wrong_colour"]["hard_share"]
    assert measured["extra_object"]["hard_share"] < 0.05
    assert measured["wrong_shape"]["sft_ranks_right"] < 0.9 < measured["wrong_colour"]["sft_ranks_right"]


def test_clip_refuses_a_text_longer_than_its_context_instead_of_reading_it_cut() -> None:
    import open_clip

    from damo.tinyworld.clip import check_fits

    tokenizer = open_clip.SimpleTokenizer(context_length=16)
    fits = "There is a red circle and a blue square and a cat."  # 13 tokens + start and end
    cut = "There is a red circle and a blue square and a dog and a cat."  # 16 + 2: the cat is cut off
    check_fits(tokenizer([fits]), [fits])
    with pytest.raises(ValueError, match="16-token context .*clip_context_length.*a dog and a cat"):
        check_fits(tokenizer([fits, cut]), [fits, cut])


def test_the_invented_pair_term_teaches_clip_to_prefer_the_answer_with_fewer_absent_objects() -> None:
    import random

    import torch

    from damo.config import TinyWorldConfig
    from damo.tinyworld.clip import build_clip, invented_pair_loss
    from damo.tinyworld.images import random_scene, render
    from damo.tinyworld.pairs import with_extra_object
    from damo.tinyworld.vocab import describe

    cfg = TinyWorldConfig(chosen_noise=1.0, clip_context_length=20)
    model, preprocess, tokenizer = build_clip(cfg, seed=0)
    rng = random.Random(0)
    scenes = [random_scene(rng, cfg.image_size, cfg.max_shapes, cfg.shape_size) for _ in range(16)]
    pixels = torch.stack([preprocess(render(s, cfg.image_size, rng)) for s in scenes])
    positives = [describe(s) for s in scenes]
    negatives = [with_extra_object(s, rng).text for s in scenes]

    def loss() -> torch.Tensor:  # the same invented objects every time: one fixed set of pairs
        features = model.encode_image(pixels, normalize=True)
        return invented_pair_loss(model, tokenizer, features, positives, negatives, 1.0, random.Random(1))

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = float(loss())
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss()) < 0.5 * before, (before, float(loss()))
