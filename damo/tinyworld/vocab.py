"""The words of the tiny world: colours, shapes, hallucinated objects, questions and captions.

Every colour, shape and object is one lowercase word, so that the word-level tokenizer gives it one
token (the probe in notes/tiny-world-probe.md: byte-level tokens collapse under DPO). Captions follow
one grammar, ``There is a <colour> <shape>[ and a <colour> <shape>][ and a <object>].``, which the
policy can learn in a CPU-minute and the evaluator can parse with plain word matching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Colour name → RGB used by the renderer. Far apart in RGB so a 48 px image keeps them distinct.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Objects that never appear in an image: what a hallucinating caption adds.
HALLUCINATED_OBJECTS: tuple[str, ...] = ("dog", "cat", "car", "tree", "house", "bird")
QUESTIONS: tuple[str, ...] = ("What do you see?", "Describe the image.", "What is in the image?")

# Synonyms the evaluator's CHAIR counts as the canonical word (plurals: the grammar never uses them,
# a sampled answer might).
SYNONYMS: dict[str, list[str]] = {
    **{c: [c] for c in COLOURS},
    **{s: [s, s + "s"] for s in SHAPES},
    **{o: [o, o + "s"] for o in HALLUCINATED_OBJECTS},
}


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its words and where it sits (pixels, centre and half-size)."""

    colour: str
    shape: str
    x: int
    y: int
    radius: int

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """What one image shows: shapes ordered left to right (the caption's order)."""

    shapes: tuple[Shape, ...]

    @property
    def truth(self) -> list[str]:
        """Canonical words present in the image: its colours and shapes, sorted."""
        return sorted({s.colour for s in self.shapes} | {s.shape for s in self.shapes})


def caption(phrases: Sequence[str]) -> str:
    """``["a red circle", "a dog"]`` → ``"There is a red circle and a dog."``."""
    if not phrases:
        raise ValueError("a caption needs at least one phrase")
    return "There is " + " and ".join(phrases) + "."


def phrases(text: str) -> list[str]:
    """:func:`caption`'s inverse: ``"There is a red circle and a dog."`` → ``["a red circle", "a dog"]``."""
    prefix, suffix = caption(["\0"]).split("\0")
    if not (text.startswith(prefix) and text.endswith(suffix)) or len(text) <= len(prefix) + len(suffix):
        raise ValueError(f"not a tiny-world caption: {text!r}")
    return text[len(prefix):-len(suffix)].split(" and ")


def describe(scene: Scene) -> str:
    """The correct description: every shape, left to right, nothing else."""
    return caption([s.phrase for s in scene.shapes])


def vocabulary() -> dict[str, list[str]]:
    """The benchmark's ``vocabulary.json`` content: canonical word → synonyms."""
    return {word: list(syns) for word, syns in SYNONYMS.items()}


def all_words() -> list[str]:
    """Every word a prompt or caption of this world can contain (for the tokenizer corpus)."""
    texts = [*QUESTIONS, caption(["a"]), "USER: ASSISTANT:"]
    words = {w for t in texts for w in t.replace(".", " ").replace("?", " ").replace(":", " ").split()}
    words |= set(COLOURS) | set(SHAPES) | set(HALLUCINATED_OBJECTS) | {"and"}
    return sorted(words)


def mentioned(text: str) -> set[str]:
    """Canonical vocabulary words mentioned in ``text`` (lower-cased, punctuation ignored)."""
    tokens = set(text.lower().replace(".", " ").replace(",", " ").replace("?", " ").split())
    return {word for word, syns in SYNONYMS.items() if tokens & set(syns)}


def _alternatives(words: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words)) + ")"


# The caption grammar: ``There is a <colour> <shape>( and a <colour> <shape>)*( and a <object>).``
_PHRASE = rf"a {_alternatives(list(COLOURS))} {_alternatives(SHAPES)}"
_OBJECT = rf"a {_alternatives(HALLUCINATED_OBJECTS)}"
WELL_FORMED = re.compile(rf"There is {_PHRASE}(?: and {_PHRASE})*(?: and {_OBJECT})?\.")


def well_formed(text: str) -> bool:
    """Whether ``text`` is one sentence of the caption grammar (true or not: a hallucinated object
    is grammatical). Broken answers (repeated words, no full stop, truncated) are not."""
    return WELL_FORMED.fullmatch(text.strip()) is not None
