"""CHAIR (Rohrbach et al. 2018) as RLAIF-V computes it on Object HalBench: the official exact-match path.

The matching is RLAIF-V's ``CHAIR.caption_to_words`` (``eval/eval_gpt_obj_halbench.py`` at commit
83d917b, ``--use_gpt`` off), reproduced exactly, for answers and for the ground truth built from
reference captions alike:

1. lower-case, ``nltk.word_tokenize`` (nltk 3.8.1: punkt sentences, then the Treebank-style tokenizer,
   which keeps "cup/mug", "man—probably", "bear…" and "'stop" whole);
2. ``WordNetLemmatizer().lemmatize`` every token as a noun (so "men" stays "men", "busses" → "bus",
   "grandchildren" → "grandchild", "vases" → "vas", "skies" → "sky");
3. greedy left-to-right two-word merge ("hot dog", "baby elephant" → elephant, "toilet seat" → toilet,
   "home plate" stays itself and so is no plate);
4. if "toilet" and "seat" both occur, every "seat" goes;
5. keep the vocabulary words, each mapped to its class.

Departures a team may want are :data:`DEVIATIONS`, off by default and named in the scorer string.
The tiny world keeps a data-free rule lemmatiser (``matcher="rules"``) over its own vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from damo.eval import nltk_text

# Two-word phrases RLAIF-V adds so that "baby"/"adult"/"passenger" do not fire as person.
_BABY_ADULT_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
                       "giraffe", "animal", "cub")
_PASSENGER_VEHICLES = ("jet", "train")
# Not vocabulary words: merged so that "plate"/"train" inside them do not count.
_COCO_EXTRA_DOUBLE_WORDS = ("home plate", "train track")
_COCO_FIXED_DOUBLE_WORDS = {"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"}

# The tiny world's rule lemmatiser (matcher "rules"; never used for Object HalBench).
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
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")

RLAIFV_COMMIT = "83d917b"
# Optional departures from the official matching (none by default): name → what it changes.
DEVIATIONS = {
    "men_as_person": "the lemma 'men' counts as 'man' (person); WordNet keeps 'men', a noun of its own",
    "split_punctuation": "tokens are also split at every non-alphanumeric character ('cup/mug' → cup, mug)",
}


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
    matcher: str = "rlaifv"  # key of _MATCHERS: how text becomes lemmatised tokens
    deviations: frozenset[str] = field(default=frozenset())  # keys of DEVIATIONS (rlaifv only)

    @classmethod
    def build(cls, groups: Iterable[Sequence[str]], extra_double: Mapping[str, str],
              matcher: str = "rlaifv") -> Vocabulary:
        """``groups``: one sequence per class, the canonical name first, then its synonyms."""
        canonical: dict[str, str] = {}
        for group in groups:
            words = [w.strip() for w in group if w.strip()]
            for word in words:
                canonical[word] = words[0]
        doubles = {w: w for w in canonical if len(w.split(" ")) >= 2}
        doubles.update(extra_double)
        known = {tok for phrase in (*canonical, *doubles) for tok in phrase.split(" ")}
        return cls(canonical, doubles, frozenset(known), matcher)

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
        return cls.build(([name, *syns] for name, syns in objects.items()), {}, matcher="rules")

    def with_deviations(self, names: Iterable[str]) -> Vocabulary:
        """This vocabulary matched with the named :data:`DEVIATIONS` switched on."""
        chosen = frozenset(names)
        unknown = chosen - set(DEVIATIONS)
        if unknown:
            raise ValueError(f"unknown CHAIR deviation(s) {sorted(unknown)}; known: {sorted(DEVIATIONS)}")
        return replace(self, deviations=chosen)

    @property
    def scorer(self) -> str:
        """The scorer's name and version, as every report prints it."""
        if self.matcher == "rules":
            return "CHAIR: damo rule lemmatiser (tiny world vocabulary)"
        name = (f"CHAIR: RLAIF-V exact-match (eval_gpt_obj_halbench.py @{RLAIFV_COMMIT}), "
                f"nltk {nltk_text.NLTK_VERSION} rules, WordNet 3.0")
        return name + (f"; deviations: {', '.join(sorted(self.deviations))}" if self.deviations else "")

    @property
    def classes(self) -> set[str]:
        return set(self.canonical.values())


def load_synonyms(path: str | Path) -> Vocabulary:
    return Vocabulary.from_synonyms_file(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Mention:
    word: str  # the surface word (after lemmatising and merging)
    cls: str  # its canonical class


def _rlaifv_tokens(text: str, vocab: Vocabulary) -> list[str]:
    """RLAIF-V's ``caption_to_words`` steps 1-2: nltk 3.8.1 tokens of the lower-cased text, lemmatised."""
    tokens = nltk_text.word_tokenize(text.lower())
    if "split_punctuation" in vocab.deviations:
        tokens = [part for tok in tokens for part in _NON_ALPHANUMERIC.split(tok) if part]
    lemmas = [nltk_text.lemmatize(tok) for tok in tokens]
    if "men_as_person" in vocab.deviations:
        lemmas = ["man" if lemma == "men" else lemma for lemma in lemmas]
    return lemmas


def _rule_tokens(text: str, vocab: Vocabulary) -> list[str]:
    return [singularize(t, vocab.known_tokens) for t in tokenize(text)]


_MATCHERS = {"rlaifv": _rlaifv_tokens, "rules": _rule_tokens}


def mentions(text: str, vocab: Vocabulary) -> list[Mention]:
    """Every vocabulary mention in ``text``, in order, repeats kept (CHAIR_i counts each)."""
    tokens = _MATCHERS[vocab.matcher](text, vocab)
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
        "scorer": vocab.scorer,
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
