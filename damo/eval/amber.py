"""AMBER (Wang et al. 2023): generative CHAIR/Cover/Hal/Cog and discriminative yes/no, no NLP models.

Reads the AMBER repository's ``data/`` folder (``evaluate.data["amber"]``): ``annotations.json``
(list indexed by id − 1), ``relation.json`` (word → associated words), ``safe_words.txt`` and the
query file ``evaluate.amber_query_file``; images from ``evaluate.data["amber_images"]``.

Generative scoring follows the official ``inference.py`` with its spaCy similarity switched off and
without NLTK's POS tagger: every token (lemmatised as a noun by :func:`damo.eval.chair.singularize`)
that is in the hallucination vocabulary (relation.json keys ∪ values) counts as a noun. A noun is
skipped-but-counted if it is a safe word; safe if it is a truth object or an association of one (that
truth object is covered); otherwise hallucinated, and if it is a ``hallu`` target or an association
of one, that target counts for Cog. Ratios use exact denominators (the official counters start at
0.001); an empty denominator gives ``None``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from damo.eval.chair import singularize, tokenize
from damo.eval.items import Answers, BenchContext, BenchmarkDataError, EvalItem, by_id, read_json, write_jsonl
from damo.eval.pope import binary_metrics

NAME = "amber"
# Official dimension of each discriminative type; any other discriminative type is "relation".
_DIMENSIONS = {"discriminative-hallucination": "existence", "discriminative-attribute-state": "attribute",
               "discriminative-attribute-number": "attribute", "discriminative-attribute-action": "attribute"}
_SUB_DIMENSIONS = {"discriminative-attribute-state": "state", "discriminative-attribute-number": "number",
                   "discriminative-attribute-action": "action"}


def load_items(ctx: BenchContext) -> list[EvalItem]:
    folder = ctx.data_path(NAME)
    images = ctx.image_dir("amber_images")
    annotations = read_json(folder / "annotations.json")
    queries = read_json(folder / ctx.config.evaluate.amber_query_file)
    suffix = ctx.config.evaluate.short_answer_prompt
    items = []
    for q in queries:
        kind = annotations[q["id"] - 1]["type"]
        question = q["query"] if kind == "generative" else f"{q['query']}\n{suffix}".strip()
        items.append(EvalItem(str(q["id"]), question, images / q["image"], {"type": kind}))
    return ctx.limited(items)


def parse_answer(text: str, rule: str) -> str | None:
    """"Yes"/"No" → "yes"/"no"; ``exact`` is the official rule, ``first_word`` ignores case/punctuation."""
    if rule == "exact":
        return {"Yes": "yes", "No": "no"}.get(text)
    words = tokenize(text)
    return words[0] if words and words[0] in ("yes", "no") else None


class GenerativeScorer:
    """Counters of the generative task over responses."""

    def __init__(self, relation: dict[str, list[str]], safe_words: set[str]) -> None:
        self.relation = relation
        self.safe_words = safe_words
        self.vocabulary = set(relation) | {w for words in relation.values() for w in words}
        self.known = frozenset(self.vocabulary)
        self.counts: Counter[str] = Counter()

    def nouns(self, text: str) -> list[str]:
        return [w for w in (singularize(t, self.known) for t in tokenize(text)) if w in self.vocabulary]

    def _owner(self, noun: str, targets: list[str]) -> str | None:
        """The target ``noun`` stands for: associations first (targets in order), then the targets
        themselves — the order of the official scorer's lookup list."""
        for target in targets:
            if noun in self.relation.get(target, []):
                return target
        return noun if noun in targets else None

    def add(self, text: str, truth: list[str], hallu: list[str]) -> dict[str, Any]:
        covered, cognised, hallucinated = set(), set(), []
        nouns = self.nouns(text)
        for noun in nouns:
            if noun in self.safe_words:
                continue
            owner = self._owner(noun, truth)
            if owner is not None:
                covered.add(owner)
                continue
            target = self._owner(noun, hallu)
            if target is not None:
                cognised.add(target)
            hallucinated.append(noun)
        self.counts.update({"nouns": len(nouns), "hallucinated": len(hallucinated), "covered": len(covered),
                            "truth": len(set(truth)), "cognised": len(cognised), "hallu": len(set(hallu)),
                            "responses": 1, "hallucinated_responses": int(bool(hallucinated))})
        return {"nouns": nouns, "hallucinated": hallucinated, "covered": sorted(covered)}

    def metrics(self) -> dict[str, Any]:
        c = self.counts

        def ratio(a: str, b: str) -> float | None:
            return c[a] / c[b] if c[b] else None

        return {"chair": ratio("hallucinated", "nouns"), "cover": ratio("covered", "truth"),
                "hal": ratio("hallucinated_responses", "responses"), "cog": ratio("cognised", "hallu"),
                "responses": c["responses"], "nouns": c["nouns"]}


def _discriminative(rows: list[tuple[str, str | None, str]]) -> dict[str, Any]:
    """rows: (type, parsed answer or None, truth). "no" is the positive class, as in AMBER."""
    def group(selected: list[tuple[str, str | None, str]]) -> dict[str, Any]:
        return binary_metrics([p or "unparsed" for _, p, _ in selected], [t for _, _, t in selected], "no")

    out: dict[str, Any] = group(rows)
    out["unparsed"] = sum(p is None for _, p, _ in rows)
    for dim in ("existence", "attribute", "relation"):
        selected = [r for r in rows if _DIMENSIONS.get(r[0], "relation") == dim]
        if selected:
            out[dim] = group(selected)
    for kind, sub in _SUB_DIMENSIONS.items():
        selected = [r for r in rows if r[0] == kind]
        if selected:
            out[sub] = group(selected)
    return out


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    """Generative and discriminative metrics and the AMBER score (1 − CHAIR + F1) / 2."""
    folder = ctx.data_path(NAME)
    annotations = read_json(folder / "annotations.json")
    relation = read_json(folder / "relation.json")
    safe_words = {w.strip() for w in (folder / "safe_words.txt").read_text().splitlines() if w.strip()}
    generative = GenerativeScorer(relation, safe_words)
    rows: list[tuple[str, str | None, str]] = []
    rule = ctx.config.evaluate.amber_answer_parse
    details = []
    for item, text in by_id(answers, items, NAME):
        index = int(item.id) - 1
        if not 0 <= index < len(annotations):
            raise BenchmarkDataError(f"amber: id {item.id} is outside annotations.json")
        ann = annotations[index]
        if ann["type"] == "generative":
            details.append({"id": item.id, **generative.add(text, ann["truth"], ann["hallu"])})
        else:
            rows.append((ann["type"], parse_answer(text.strip(), rule), ann["truth"]))
            details.append({"id": item.id, "type": ann["type"], "parsed": rows[-1][1], "truth": ann["truth"]})
    write_jsonl(ctx.out / f"details.{group}.jsonl", details)
    metrics: dict[str, Any] = {"answer_parse": rule}
    if generative.counts["responses"]:
        metrics["generative"] = generative.metrics()
    if rows:
        metrics["discriminative"] = _discriminative(rows)
    chair = metrics.get("generative", {}).get("chair")
    f1 = metrics.get("discriminative", {}).get("f1")
    metrics["amber_score"] = (1 - chair + f1) / 2 if chair is not None and f1 is not None else None
    return metrics
