"""CHAIR (Rohrbach et al. 2018) as RLHF-V/RLAIF-V compute it on Object HalBench, without NLTK data.

The matching follows RLAIF-V's exact-match path (``eval/eval_gpt_obj_halbench.py``, ``--use_gpt``
off): lower-case, tokenise, lemmatise each token as a noun, merge two-word names left to right
("hot dog", "baby elephant" → elephant, "toilet seat" → toilet), drop "seat" when "toilet" occurs,
keep the words of the vocabulary and map each to its canonical class. Two deliberate differences,
both because no NLTK/WordNet data is downloaded:

- tokens are ``[a-z0-9]+(-[a-z0-9]+)*`` runs (NLTK's word_tokenize also splits "dog's" → "dog");
- the lemmatiser is a rule + irregular-plural one that only needs to be right for vocabulary words:
  a token becomes the first candidate singular that is a vocabulary word (so "men" → "man" → person,
  where WordNet keeps "men" and misses it).

The same code scores the tiny world over its own vocabulary (:meth:`Vocabulary.from_objects`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Two-word phrases RLAIF-V adds so that "baby"/"adult"/"passenger" do not fire as person.
_BABY_ADULT_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
                       "giraffe", "animal", "cub")
_PASSENGER_VEHICLES = ("jet", "train")
# Not vocabulary words: merged so that "plate"/"train" inside them do not count.
_COCO_EXTRA_DOUBLE_WORDS = ("home plate", "train track")
_COCO_FIXED_DOUBLE_WORDS = {"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"}

# Irregular plurals (singular forms are tried against the vocabulary, so extras are harmless).
_IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "people": "person", "mice": "mouse",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "oxen": "ox", "dice": "die",
    "knives": "knife", "wolves": "wolf", "calves": "calf", "halves": "half", "leaves": "leaf",
    "shelves": "shelf", "loaves": "loaf", "scarves": "scarf", "wives": "wife", "lives": "life",
}
# Suffix rules in WordNet's morphy order for nouns: (suffix, replacement).
_SUFFIX_RULES = (("ies", "y"), ("ves", "f"), ("ves", "fe"), ("ses", "s"), ("xes", "x"), ("zes", "z"),
                 ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("es", ""), ("s", ""))
_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation separates tokens, hyphenated words stay whole."""
    return _TOKEN.findall(text.lower())


def singularize(token: str, known: frozenset[str]) -> str:
    """``token`` itself if known, else its first rule/irregular singular that is known, else unchanged."""
    if token in known:
        return token
    candidates = [_IRREGULAR[token]] if token in _IRREGULAR else []
    candidates += [token[: -len(suf)] + rep for suf, rep in _SUFFIX_RULES if token.endswith(suf)]
    return next((c for c in candidates if c in known), token)


@dataclass(frozen=True)
class Vocabulary:
    """Surface words (one or two tokens) → canonical class, plus the two-word merge table."""

    canonical: Mapping[str, str]  # every surface word (synonym or class name) → its class
    double_words: Mapping[str, str]  # "w1 w2" → the word it stands for (maybe not a vocabulary word)
    known_tokens: frozenset[str] = field(default=frozenset())  # what singularize may produce

    @classmethod
    def build(cls, groups: Iterable[Sequence[str]], extra_double: Mapping[str, str]) -> Vocabulary:
        """``groups``: one sequence per class, the canonical name first, then its synonyms."""
        canonical: dict[str, str] = {}
        for group in groups:
            words = [w.strip() for w in group if w.strip()]
            for word in words:
                canonical[word] = words[0]
        doubles = {w: w for w in canonical if len(w.split(" ")) >= 2}
        doubles.update(extra_double)
        known = {tok for phrase in (*canonical, *doubles) for tok in phrase.split(" ")}
        return cls(canonical, doubles, frozenset(known))

    @classmethod
    def from_synonyms_file(cls, text: str) -> Vocabulary:
        """RLAIF-V's ``synonyms_refine.txt`` (one class per line, ", "-separated) with its merge rules."""
        groups = [line.strip().split(", ") for line in text.splitlines() if line.strip()]
        extra = {w: w for w in _COCO_EXTRA_DOUBLE_WORDS}
        for animal in _BABY_ADULT_ANIMALS:
            extra[f"baby {animal}"] = animal
            extra[f"adult {animal}"] = animal
        extra.update({f"passenger {v}": v for v in _PASSENGER_VEHICLES})
        extra.update(_COCO_FIXED_DOUBLE_WORDS)
        return cls.build(groups, extra)

    @classmethod
    def from_objects(cls, objects: Mapping[str, Sequence[str]]) -> Vocabulary:
        """The tiny world's ``vocabulary.json`` ``objects``: canonical word → synonyms."""
        return cls.build(([name, *syns] for name, syns in objects.items()), {})

    @property
    def classes(self) -> set[str]:
        return set(self.canonical.values())


def load_synonyms(path: str | Path) -> Vocabulary:
    return Vocabulary.from_synonyms_file(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Mention:
    word: str  # the surface word (after lemmatising and merging)
    cls: str  # its canonical class


def mentions(text: str, vocab: Vocabulary) -> list[Mention]:
    """Every vocabulary mention in ``text``, in order, repeats kept (CHAIR_i counts each)."""
    tokens = [singularize(t, vocab.known_tokens) for t in tokenize(text)]
    merged: list[str] = []
    i = 0
    while i < len(tokens):  # greedy left-to-right two-word merge, as RLAIF-V
        pair = " ".join(tokens[i:i + 2])
        if i + 1 < len(tokens) and pair in vocab.double_words:
            merged.append(vocab.double_words[pair])
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    if "toilet" in merged and "seat" in merged:  # a toilet seat is not a chair
        merged = [w for w in merged if w != "seat"]
    return [Mention(w, vocab.canonical[w]) for w in merged if w in vocab.canonical]


def classes_in(text: str, vocab: Vocabulary) -> set[str]:
    return {m.cls for m in mentions(text, vocab)}


@dataclass(frozen=True)
class ChairItem:
    """One response and the classes truly in its image."""

    id: str
    text: str
    truth: frozenset[str]


@dataclass(frozen=True)
class ChairDetail:
    """What one response mentions, which of it is hallucinated, which classes it got right."""

    id: str
    mentions: list[Mention]
    hallucinated: list[Mention]
    correct_classes: list[str]
    truth: list[str]

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "mentions": [[m.word, m.cls] for m in self.mentions],
                "hallucinated": [[m.word, m.cls] for m in self.hallucinated],
                "correct_classes": self.correct_classes, "truth": self.truth}


def score_item(item: ChairItem, vocab: Vocabulary) -> ChairDetail:
    found = mentions(item.text, vocab)
    return ChairDetail(item.id, found, [m for m in found if m.cls not in item.truth],
                       sorted({m.cls for m in found if m.cls in item.truth}), sorted(item.truth))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def chair_metrics(items: Sequence[ChairItem],
                  vocab: Vocabulary) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Aggregate CHAIR metrics (fractions, not percent) and per-response details.

    - ``chair_response`` (RLAIF-V's CHAIRs_refine, the "Resp." of RLHF-V/RLAIF-V/DAMA): hallucinated
      responses / responses mentioning at least one class;
    - ``chair_s`` (classic CHAIR_s): hallucinated responses / all responses;
    - ``chair_mention`` (CHAIR_i, "Ment."): hallucinated mentions / all mentions, repeats counted;
    - ``object_recall``: Σ unique correct classes per response / Σ truth classes per response;
    - ``avg_length``: mean of words per response (split on spaces, as RLAIF-V).
    A ratio with an empty denominator is ``None``, never a made-up 0.
    """
    details = [score_item(it, vocab) for it in items]
    n_mentions = sum(len(d.mentions) for d in details)
    n_hal_mentions = sum(len(d.hallucinated) for d in details)
    n_with_objects = sum(1 for d in details if d.mentions)
    n_hal_responses = sum(1 for d in details if d.hallucinated)
    n_correct = sum(len(d.correct_classes) for d in details)
    n_truth = sum(len(it.truth) for it in items)
    metrics: dict[str, Any] = {
        "chair_response": _ratio(n_hal_responses, n_with_objects),
        "chair_s": _ratio(n_hal_responses, len(items)),
        "chair_mention": _ratio(n_hal_mentions, n_mentions),
        "object_recall": _ratio(n_correct, n_truth),
        "avg_length": _ratio(sum(len(it.text.strip().split(" ")) for it in items), len(items)),
        "responses": len(items),
        "responses_with_objects": n_with_objects,
        "hallucinated_responses": n_hal_responses,
        "mentions": n_mentions,
        "hallucinated_mentions": n_hal_mentions,
    }
    return metrics, [d.to_json() for d in details]
