"""AMBER (Wang et al. 2023): generative CHAIR/Cover/Hal/Cog and discriminative yes/no, as the official
``inference.py`` (junyangwang0410/AMBER @534babf) computes them.

Reads the AMBER repository's ``data/`` folder (``evaluate.data["amber"]``): ``annotations.json``
(list indexed by id − 1), ``relation.json`` (word → associated words), ``safe_words.txt`` and the
query file ``evaluate.amber_query_file``; images from ``evaluate.data["amber_images"]``.

Generative scoring, step by step as the official scorer:

1. nouns: ``nltk.word_tokenize`` (nltk 3.8.1, no lower-casing), ``nltk.pos_tag``, every ``NN*`` token
   lemmatised by WordNet; kept if in the hallucination vocabulary (relation.json keys ∪ values);
2. per noun: a safe word → skipped (still counted in CHAIR's denominator); equal to a truth object or
   one of its associations → that object is covered; else equal to a ``hallu`` object or association →
   that target counts for Cog; then the first ``hallu`` word with similarity > threshold counts for
   Cog too; then the first truth word with similarity > threshold covers its object (the noun is
   safe); otherwise the noun is hallucinated.

Two steps need resources, each behind a seam and named in the ``scorer`` string of every report:

- the POS tagger: NLTK's averaged perceptron (``evaluate.amber_tagger="perceptron"``, its pickle in
  ``$DAMO_NLTK_DATA``; no offline source here), or ``"none"``: every token is a noun candidate
  (a departure: not the official number);
- the similarity: spaCy ``nlp(a).similarity(nlp(b))`` with ``evaluate.amber_similarity`` (official:
  ``en_core_web_lg``, > ``amber_similarity_threshold`` 0.8), or ``null``: exact matches only (a
  departure). A configured model that cannot be loaded is an error, never a silent fallback.

Metrics come twice: fractions with exact denominators (``None`` when empty), and ``official``: the
numbers ``inference.py`` prints (percent rounded to 0.1, counters starting at ``data/metrics.txt``'s
0.001, F1 from the rounded precision and recall).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from damo.eval import nltk_text
from damo.eval.chair import tokenize
from damo.eval.items import Answers, BenchContext, BenchmarkDataError, EvalItem, by_id, read_json, write_jsonl
from damo.eval.nltk_text import Tagger
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


Similarity = Callable[[str, str], float]
AMBER_COMMIT = "534babf"
_METRICS_TXT_START = 0.001  # every denominator in the official data/metrics.txt starts here
# inference.py adds these to its F1 denominators: 0.001 for existence, 0.0001 everywhere else
_F1_EPSILON = {"existence": 0.001}
_F1_EPSILON_DEFAULT = 0.0001


def _untagged(tokens: list[str]) -> list[tuple[str, str]]:
    return [(t, "NN") for t in tokens]


# evaluate.amber_tagger → the tagger's loader
TAGGERS: dict[str, Callable[[], Tagger]] = {"perceptron": nltk_text.perceptron_tagger,
                                             "none": lambda: _untagged}


def nltk_nouns(tagger: Tagger) -> Callable[[str], list[str]]:
    """inference.py's ``extract_nouns``: word_tokenize, pos_tag, WordNet lemma of every NN* token."""
    def nouns(text: str) -> list[str]:
        tagged = tagger(nltk_text.word_tokenize(text))
        return [nltk_text.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]
    return nouns


def spacy_similarity(nlp: Any) -> Similarity:
    """inference.py's ``check_synonyms_word`` score: ``nlp(a).similarity(nlp(b))`` (cached per pair)."""
    @lru_cache(maxsize=65536)
    def similarity(a: str, b: str) -> float:
        return float(nlp(a).similarity(nlp(b)))
    return similarity


def load_spacy(model: str) -> Similarity:
    try:
        import spacy

        nlp = spacy.load(model)
    except (ImportError, OSError) as err:
        raise BenchmarkDataError(
            f"AMBER's word similarity needs spaCy with the model {model!r} ({err}); install it, or set "
            "evaluate.amber_similarity=null to score by exact match only (not the official number)") from err
    return spacy_similarity(nlp)


class GenerativeScorer:
    """Counters of the generative task over responses (see the module docstring for the rules)."""

    def __init__(self, relation: dict[str, list[str]], safe_words: set[str],
                 nouns: Callable[[str], list[str]], similarity: Similarity | None, threshold: float) -> None:
        self.relation = relation
        self.safe_words = safe_words
        self.vocabulary = set(relation) | {w for words in relation.values() for w in words}
        self.extract = nouns
        self.similarity = similarity
        self.threshold = threshold
        self.counts: Counter[str] = Counter()

    def _lookup(self, objects: list[str]) -> list[tuple[str, int]]:
        """The official lookup list: each object's associations (objects in order), then the objects
        themselves, each with the index of the object it stands for."""
        missing = [o for o in objects if o not in self.relation]
        if missing:
            raise BenchmarkDataError(f"amber: object(s) {missing} are not keys of relation.json")
        return [(w, i) for i, o in enumerate(objects) for w in self.relation[o]] + [(o, i) for i, o in
                                                                                    enumerate(objects)]

    def _similar(self, noun: str, lookup: list[tuple[str, int]]) -> int | None:
        if self.similarity is None:
            return None
        return next((i for word, i in lookup if self.similarity(noun, word) > self.threshold), None)

    def add(self, text: str, truth: list[str], hallu: list[str]) -> dict[str, Any]:
        safe, targets = self._lookup(truth), self._lookup(hallu)
        covered: set[int] = set()
        cognised: set[int] = set()
        hallucinated: list[str] = []
        nouns = [n for n in self.extract(text) if n in self.vocabulary]
        for noun in nouns:
            if noun in self.safe_words:
                continue
            owner = next((i for word, i in safe if word == noun), None)
            if owner is not None:
                covered.add(owner)
                continue
            cognised.update(i for i in (next((i for word, i in targets if word == noun), None),
                                        self._similar(noun, targets)) if i is not None)
            owner = self._similar(noun, safe)
            if owner is not None:
                covered.add(owner)
                continue
            hallucinated.append(noun)
        self.counts.update({"nouns": len(nouns), "hallucinated": len(hallucinated), "covered": len(covered),
                            "truth": len(truth), "cognised": len(cognised), "hallu": len(hallu),
                            "responses": 1, "hallucinated_responses": int(bool(hallucinated))})
        return {"nouns": nouns, "hallucinated": hallucinated, "covered": sorted(truth[i] for i in covered)}

    def metrics(self) -> dict[str, Any]:
        c = self.counts

        def ratio(a: str, b: str) -> float | None:
            return c[a] / c[b] if c[b] else None

        return {"chair": ratio("hallucinated", "nouns"), "cover": ratio("covered", "truth"),
                "hal": ratio("hallucinated_responses", "responses"), "cog": ratio("cognised", "hallu"),
                "responses": c["responses"], "nouns": c["nouns"]}

    def official(self) -> dict[str, float]:
        """What inference.py prints for the generative task."""
        c = self.counts
        return {"chair": _percent(c["hallucinated"], c["nouns"]), "cover": _percent(c["covered"], c["truth"]),
                "hal": round(100 - (c["responses"] - c["hallucinated_responses"])
                             / (c["responses"] + _METRICS_TXT_START) * 100, 1),
                "cog": _percent(c["cognised"], c["hallu"])}


def _percent(num: float, den: float) -> float:
    return round(num / (den + _METRICS_TXT_START) * 100, 1)


def _official_binary(m: dict[str, Any], dimension: str) -> dict[str, float]:
    """inference.py's accuracy/precision/recall/F1 ("No" positive) from the counts of binary_metrics."""
    precision = _percent(m["tp"], m["tp"] + m["fp"])
    recall = _percent(m["tp"], m["tp"] + m["fn"])
    p, r = precision / 100, recall / 100
    f1 = round(2 * p * r / (p + r + _F1_EPSILON.get(dimension, _F1_EPSILON_DEFAULT)) * 100, 1)
    accuracy = _percent(m["tp"] + m["tn"], m["n"])
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def _discriminative(rows: list[tuple[str, str | None, str]]) -> dict[str, Any]:
    """rows: (type, parsed answer or None, truth). "no" is the positive class, as in AMBER."""
    def group(selected: list[tuple[str, str | None, str]]) -> dict[str, Any]:
        return binary_metrics([p or "unparsed" for _, p, _ in selected], [t for _, _, t in selected], "no")

    out: dict[str, Any] = group(rows)
    out["unparsed"] = sum(p is None for _, p, _ in rows)
    official = {"discriminative": _official_binary(out, "discriminative")}
    groups = {dim: [r for r in rows if _DIMENSIONS.get(r[0], "relation") == dim]
              for dim in ("existence", "attribute", "relation")}
    groups.update({sub: [r for r in rows if r[0] == kind] for kind, sub in _SUB_DIMENSIONS.items()})
    for name, selected in groups.items():
        if selected:
            out[name] = group(selected)
            official[name] = _official_binary(out[name], name)
    out["official"] = official
    return out


def evaluate(annotations: list[dict[str, Any]], responses: list[tuple[str, str]],
             generative: GenerativeScorer, rule: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-response details of ``responses`` ((id, text) pairs) against ``annotations``."""
    rows: list[tuple[str, str | None, str]] = []
    details = []
    for item_id, text in responses:
        index = int(item_id) - 1
        if not 0 <= index < len(annotations):
            raise BenchmarkDataError(f"amber: id {item_id} is outside annotations.json")
        ann = annotations[index]
        if ann["type"] == "generative":
            details.append({"id": item_id, **generative.add(text, ann["truth"], ann["hallu"])})
        else:
            rows.append((ann["type"], parse_answer(text.strip(), rule), ann["truth"]))
            details.append({"id": item_id, "type": ann["type"], "parsed": rows[-1][1], "truth": ann["truth"]})
    metrics: dict[str, Any] = {"answer_parse": rule}
    official: dict[str, Any] = {}
    if generative.counts["responses"]:
        metrics["generative"] = generative.metrics()
        official["generative"] = generative.official()
    if rows:
        metrics["discriminative"] = _discriminative(rows)
        official.update(metrics["discriminative"].pop("official"))
    chair = metrics.get("generative", {}).get("chair")
    f1 = metrics.get("discriminative", {}).get("f1")
    metrics["amber_score"] = (1 - chair + f1) / 2 if chair is not None and f1 is not None else None
    metrics["official"] = official
    return metrics, details


def scorer_name(tagger: str, similarity: str | None, threshold: float, rule: str) -> str:
    sim = f"spaCy {similarity} > {threshold}" if similarity else "off (exact match only, not official)"
    tag = "NLTK averaged perceptron" if tagger == "perceptron" else "none (every token, not official)"
    parse = rule if rule == "exact" else f"{rule} (not official)"
    return (f"AMBER: inference.py @{AMBER_COMMIT} rules, nltk {nltk_text.NLTK_VERSION}; "
            f"POS tagger: {tag}; similarity: {sim}; yes/no parse: {parse}")


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    """Generative and discriminative metrics and the AMBER score (1 − CHAIR + F1) / 2."""
    cfg = ctx.config.evaluate
    folder = ctx.data_path(NAME)
    annotations = read_json(folder / "annotations.json")
    relation = read_json(folder / "relation.json")
    safe_words = {w.strip() for w in (folder / "safe_words.txt").read_text().splitlines() if w.strip()}
    responses = [(item.id, text) for item, text in by_id(answers, items, NAME)]
    # the resources (tagger, spaCy model) are loaded only when a generative answer needs them
    needs_generative = any(annotations[int(i) - 1]["type"] == "generative" for i, _ in responses
                           if 0 < int(i) <= len(annotations))
    similarity = load_spacy(cfg.amber_similarity) if cfg.amber_similarity and needs_generative else None
    nouns = nltk_nouns(TAGGERS[cfg.amber_tagger]()) if needs_generative else (lambda _: [])
    generative = GenerativeScorer(relation, safe_words, nouns, similarity, cfg.amber_similarity_threshold)
    metrics, details = evaluate(annotations, responses, generative, cfg.amber_answer_parse)
    write_jsonl(ctx.out / f"details.{group}.jsonl", details)
    metrics["scorer"] = scorer_name(cfg.amber_tagger, cfg.amber_similarity, cfg.amber_similarity_threshold,
                                    cfg.amber_answer_parse)
    return metrics
