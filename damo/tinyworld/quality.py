"""How good the tiny world's models are: CLIP retrieval and the policy's hallucination rates.

Hallucination is CHAIR-style over the world's vocabulary: a mentioned colour, shape or object that
is not in the image. ``chair_s`` = share of answers with at least one such word, ``chair_i`` = share
of mentioned words that are hallucinated, ``extra_object_rate`` = share of answers naming an object
that never appears in any image (the prior the noisy SFT captions planted), ``shape_error_rate`` /
``colour_error_rate`` = share of answers naming a shape / colour absent from the image (the attribute
errors), ``well_formed_rate`` = share of answers in the caption grammar and ``mean_words`` their length.
"""

from __future__ import annotations

from collections.abc import Sequence

import open_clip
import torch

from damo.tinyworld.clip import Tokenizer, similarities
from damo.tinyworld.pairs import all_rejections
from damo.tinyworld.vocab import (
    COLOURS,
    HALLUCINATED_OBJECTS,
    SHAPES,
    Scene,
    describe,
    mentioned,
    well_formed,
)


def hallucination_stats(answers: Sequence[str], scenes: Sequence[Scene]) -> dict[str, float]:
    """CHAIR-style rates of ``answers`` against the scenes they describe."""
    if len(answers) != len(scenes) or not answers:
        raise ValueError(f"need one answer per scene, got {len(answers)} answers for {len(scenes)} scenes")
    return answer_stats(answers, [s.truth for s in scenes], [describe(s) for s in scenes])


def answer_stats(answers: Sequence[str], truths: Sequence[Sequence[str]], references: Sequence[str]
                 ) -> dict[str, float]:
    """The rates above for answers, each with its image's truth words and correct description."""
    if not answers or not len(answers) == len(truths) == len(references):
        raise ValueError(f"need one truth and reference per answer, got {len(answers)} answers, "
                         f"{len(truths)} truths, {len(references)} references")
    with_hallucination = extra = exact = words = wrong = shape = colour = formed = length = 0
    for answer, truth, reference in zip(answers, truths, references):
        said = mentioned(answer)
        bad = said - set(truth)
        words += len(said)
        wrong += len(bad)
        with_hallucination += bool(bad)
        extra += bool(said & set(HALLUCINATED_OBJECTS))
        shape += bool(bad & set(SHAPES))
        colour += bool(bad & set(COLOURS))
        exact += answer.strip() == reference
        formed += well_formed(answer)
        length += len(answer.split())
    n = len(answers)
    return {
        "chair_s": with_hallucination / n,
        "chair_i": wrong / words if words else 0.0,
        "extra_object_rate": extra / n,
        "shape_error_rate": shape / n,
        "colour_error_rate": colour / n,
        "exact_rate": exact / n,
        "well_formed_rate": formed / n,
        "mean_words": length / n,
        "num_answers": float(n),
    }


def clip_retrieval(model: open_clip.CLIP, tokenizer: Tokenizer, pixels: torch.Tensor,
                   scenes: Sequence[Scene]) -> dict[str, float]:
    """Image → correct description among it and all its single-edit hallucinations.

    ``pixels`` (N, 3, H, W) are the CLIP-preprocessed images of ``scenes``. Also reports accuracy
    against only the easy (extra object) or only the hard (wrong attribute) distractors, and chance.
    """
    groups, kinds = [], []
    for scene in scenes:
        rejections = all_rejections(scene)
        groups.append([describe(scene)] + [r.text for r in rejections])
        kinds.append([r.hardness for r in rejections])
    sims = similarities(model, tokenizer, pixels, groups)
    hits = {"all": 0, "easy": 0, "hard": 0}
    chance = 0.0
    for s, k in zip(sims, kinds):
        distractors = s[1:]
        hits["all"] += bool((distractors < s[0]).all())
        for hardness in ("easy", "hard"):
            mask = torch.tensor([h == hardness for h in k])
            hits[hardness] += bool((distractors[mask] < s[0]).all())
        chance += 1.0 / len(s)
    n = len(scenes)
    return {
        "clip_retrieval_accuracy": hits["all"] / n,
        "clip_retrieval_accuracy_easy": hits["easy"] / n,
        "clip_retrieval_accuracy_hard": hits["hard"] / n,
        "clip_retrieval_chance": chance / n,
        "num_images": float(n),
    }


def clip_pair_accuracy(model: open_clip.CLIP, tokenizer: Tokenizer, pixels: torch.Tensor,
                       chosen: Sequence[str], rejected: Sequence[str], hardness: Sequence[str]
                       ) -> dict[str, float]:
    """Share of pairs where CLIP scores chosen above rejected, overall and per hardness."""
    sims = similarities(model, tokenizer, pixels, [[c, r] for c, r in zip(chosen, rejected)])
    right = [bool(s[0] > s[1]) for s in sims]
    out = {"clip_pair_accuracy": sum(right) / len(right)}
    for level in sorted(set(hardness)):
        picked = [r for r, h in zip(right, hardness) if h == level]
        out[f"clip_pair_accuracy_{level}"] = sum(picked) / len(picked)
    return out
