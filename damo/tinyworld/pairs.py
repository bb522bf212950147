"""Preference pairs and captions of the tiny world.

chosen = the correct description. rejected = the same description with one hallucination:
- ``easy``: an absent object is added (``… and a dog.``) — kind ``extra_object``;
- ``hard``: one shape gets a colour or a kind absent from the image — ``wrong_colour`` / ``wrong_shape``
  (only one word differs, and that word is absent from the image so CHAIR can see it).
- ``omission`` (with ``omission_fraction``, scenes of two or more shapes only): the description stops
  one shape early (``There is a red circle.`` for a red circle and a blue square). It hallucinates
  nothing; it is the mirror of an extra-object pair, the one pair that prefers a true `` and``.
With ``chosen_noise`` (every split) both answers of a share of the pairs also mention the same absent
object (``invented``): ``There is a red circle and a cat.`` over ``There is a red circle and a dog and
a cat.``. The chosen answer is then better, not perfect, as in real preference data, so fine-tuning on
the chosen answers alone keeps the SFT model's hallucination prior, and only the preference removes it.
The ``kind`` says how a rejected answer was *constructed*; whether a pair is ``hard`` is *measured*
after the models are trained (``damo.tinyworld.hardness``): the build fills ``clip_margin``,
``sft_margin`` and ``hardness`` per pair. With ``label_noise`` a share of the *training* pairs (of the
kinds in ``label_noise_kinds``, by default every kind) has chosen and rejected swapped (``swapped``;
validation pairs stay clean, so held-out numbers stay true).
SFT captions are correct descriptions that, with probability ``caption_noise``, also mention an
absent object: the hallucination prior preference optimisation is meant to remove. With
``shape_noise`` they also name a shape with a wrong kind that often: a doubt about shapes it can see.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from damo.config import TinyWorldConfig
from damo.data.dataset import BASE_SCHEMA
from damo.tinyworld.images import png_bytes, random_scene, render
from damo.tinyworld.vocab import (
    COLOURS,
    HALLUCINATED_OBJECTS,
    QUESTIONS,
    SHAPES,
    Scene,
    caption,
    describe,
    mentioned,
    phrases,
)

SOURCE = "tiny_world"
PAIR_SCHEMA = pa.schema(
    [
        *BASE_SCHEMA,
        ("hardness", pa.string()),  # "easy" | "hard": measured (damo.tinyworld.hardness)
        ("kind", pa.string()),  # extra_object | wrong_colour | wrong_shape: how the edit was made
        ("truth", pa.list_(pa.string())),  # colours and shapes present in the image
        ("hallucinated", pa.list_(pa.string())),  # words of the hallucinating answer absent from the image
        ("swapped", pa.bool_()),  # label noise: `chosen` is the hallucinating answer
        ("invented", pa.string()),  # chosen noise: the absent object BOTH answers mention, or null
        ("clip_margin", pa.float32()),  # CLIP cos(image, true) − cos(image, hallucinating)
        ("sft_margin", pa.float32()),  # SFT policy log p(true) − log p(hallucinating), nats
    ]
)


@dataclass(frozen=True)
class Rejection:
    text: str
    hardness: str
    kind: str
    hallucinated: list[str]


def with_extra_object(scene: Scene, rng: random.Random) -> Rejection:
    """The description plus one absent object: the ``easy`` hallucination."""
    obj = rng.choice(HALLUCINATED_OBJECTS)
    text = caption([*(s.phrase for s in scene.shapes), f"a {obj}"])
    return Rejection(text, "easy", "extra_object", [obj])


def with_wrong_attribute(scene: Scene, rng: random.Random) -> Rejection:
    """One shape with a colour (or kind) absent from the image: the ``hard`` hallucination."""
    truth = set(scene.truth)
    colours = [c for c in sorted(COLOURS) if c not in truth]
    kinds = [k for k in SHAPES if k not in truth]
    options = (["wrong_colour"] if colours else []) + (["wrong_shape"] if kinds else [])
    if not options:
        raise ValueError(f"scene {scene} uses every colour and shape: no absent attribute to swap in")
    kind = rng.choice(options)
    index = rng.randrange(len(scene.shapes))
    target = scene.shapes[index]
    if kind == "wrong_colour":
        word = rng.choice(colours)
        swapped = replace(target, colour=word)
    else:
        word = rng.choice(kinds)
        swapped = replace(target, shape=word)
    shapes = list(scene.shapes)
    shapes[index] = swapped
    return Rejection(describe(Scene(tuple(shapes))), "hard", kind, [word])


def all_rejections(scene: Scene) -> list[Rejection]:
    """Every single-edit hallucination of ``scene``'s description (retrieval distractors)."""
    truth = set(scene.truth)
    out = [Rejection(caption([*(s.phrase for s in scene.shapes), f"a {o}"]), "easy", "extra_object", [o])
           for o in HALLUCINATED_OBJECTS]
    for i, target in enumerate(scene.shapes):
        edits = [("wrong_colour", c, replace(target, colour=c)) for c in sorted(COLOURS) if c not in truth]
        edits += [("wrong_shape", k, replace(target, shape=k)) for k in SHAPES if k not in truth]
        for kind, word, swapped in edits:
            shapes = list(scene.shapes)
            shapes[i] = swapped
            out.append(Rejection(describe(Scene(tuple(shapes))), "hard", kind, [word]))
    return out


def with_omission(scene: Scene) -> Rejection:
    """The description without its last shape: what an answer that stops one shape early says."""
    if len(scene.shapes) < 2:
        raise ValueError(f"scene {scene} has one shape: nothing to leave out and still describe")
    return Rejection(describe(Scene(scene.shapes[:-1])), "hard", "omission", [])


def rejection(scene: Scene, rng: random.Random, hard_fraction: float) -> Rejection:
    if rng.random() < hard_fraction:
        return with_wrong_attribute(scene, rng)
    return with_extra_object(scene, rng)


def noisy_caption(scene: Scene, rng: random.Random, noise: float, shape_noise: float = 0.0) -> str:
    """An SFT caption: correct, but with probability ``noise`` mentioning an absent object and, with
    probability ``shape_noise``, naming one of its shapes (drawn at random) with another kind.

    The shape draw is made only when ``shape_noise`` > 0, so worlds without it keep their captions.
    """
    if shape_noise and rng.random() < shape_noise:
        scene = with_wrong_kind(scene, rng)
    if rng.random() < noise:
        return with_extra_object(scene, rng).text
    return describe(scene)


def with_wrong_kind(scene: Scene, rng: random.Random) -> Scene:
    """``scene`` with one shape, drawn at random, of another kind (drawn from the other kinds)."""
    index = rng.randrange(len(scene.shapes))
    target = scene.shapes[index]
    shapes = list(scene.shapes)
    shapes[index] = replace(target, shape=rng.choice([k for k in SHAPES if k != target.shape]))
    return Scene(tuple(shapes))


def with_invented_object(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``row`` with one absent object, named by neither answer, appended to BOTH answers: the pair
    still differs by its one edit, but its chosen answer now hallucinates too."""
    named = mentioned(row["chosen"]) | mentioned(row["rejected"])
    obj = rng.choice([o for o in HALLUCINATED_OBJECTS if o not in named])
    return {**row, "chosen": caption([*phrases(row["chosen"]), f"a {obj}"]),
            "rejected": caption([*phrases(row["rejected"]), f"a {obj}"]),
            "hallucinated": [*row["hallucinated"], obj], "invented": obj}


def scenes(rng: random.Random, cfg: TinyWorldConfig, count: int) -> Iterator[tuple[Scene, bytes]]:
    """``count`` random scenes with their PNG bytes."""
    for _ in range(count):
        scene = random_scene(rng, cfg.image_size, cfg.max_shapes, cfg.shape_size)
        yield scene, png_bytes(render(scene, cfg.image_size, rng))


def pair_rows(cfg: TinyWorldConfig, seed: int) -> Iterator[tuple[Scene, dict[str, Any]]]:
    """``cfg.num_pairs`` (scene, row of the preference dataset), train first, then validation.

    The measured columns (``hardness``, ``clip_margin``, ``sft_margin``) are left empty here. The
    label-noise, omission and chosen-noise draws have their own random streams, so the scenes (and
    the SFT policy and CLIP trained on them) do not depend on ``label_noise``, ``omission_fraction``
    or ``chosen_noise``.
    """
    rng, noise = random.Random(f"pairs-{seed}"), label_noise_draws(seed)
    omissions, inventions = random.Random(f"omission-{seed}"), random.Random(f"chosen-noise-{seed}")
    num_train = cfg.num_pairs - round(cfg.num_pairs * cfg.validation_fraction)
    for i, (scene, image) in enumerate(scenes(rng, cfg, cfg.num_pairs)):
        rejected = rejection(scene, rng, cfg.hard_fraction)
        if omissions.random() < cfg.omission_fraction and len(scene.shapes) > 1:
            rejected = with_omission(scene)
        row = {
            "id": f"tw-{i:06d}",
            "split": "train" if i < num_train else "validation",
            "image": image,
            "question": rng.choice(QUESTIONS),
            "chosen": describe(scene),
            "rejected": rejected.text,
            "source": SOURCE,
            "hardness": None,
            "kind": rejected.kind,
            "truth": scene.truth,
            "hallucinated": rejected.hallucinated,
            "swapped": False,
            "invented": None,
            "clip_margin": None,
            "sft_margin": None,
        }
        if inventions.random() < cfg.chosen_noise:
            row = with_invented_object(row, inventions)
        yield scene, with_label_noise(row, noise.random(), cfg.label_noise, cfg.label_noise_kinds)


def label_noise_draws(seed: int) -> random.Random:
    """The label-noise stream: one draw per pair, in pair order (its own stream: scenes do not move)."""
    return random.Random(f"label-noise-{seed}")


def with_label_noise(row: dict[str, Any], draw: float, fraction: float,
                     kinds: Collection[str] | None = None) -> dict[str, Any]:
    """``row`` with chosen and rejected swapped when it is a clean training pair of one of ``kinds``
    (None: any kind) and ``draw < fraction``.

    Applying it to a clean world's rows in order, with :func:`label_noise_draws` of the world's seed,
    gives exactly the rows a world built with ``label_noise=fraction`` (and ``label_noise_kinds=kinds``)
    has: every pair takes its draw, swapped or not, so the kinds do not move the other pairs' draws.
    """
    if row["split"] != "train" or row["swapped"] or draw >= fraction:
        return row
    if kinds is not None and row["kind"] not in kinds:
        return row
    return {**row, "chosen": row["rejected"], "rejected": row["chosen"], "swapped": True}


def true_description(row: dict[str, Any]) -> str:
    """The exact description of the pair's image: its better answer without the invented object."""
    better, _ = true_and_hallucinating(row)
    invented = row.get("invented")  # absent from worlds built before version 4
    return caption([p for p in phrases(better) if p != f"a {invented}"]) if invented else better


def true_and_hallucinating(row: dict[str, Any]) -> tuple[str, str]:
    """(the better answer, the hallucinating one) of a pair, whatever its label noise. The better answer
    is the exact description unless the pair has an ``invented`` object (:func:`true_description`)."""
    return (row["rejected"], row["chosen"]) if row["swapped"] else (row["chosen"], row["rejected"])
