"""The tiny world's benchmark: CHAIR over its colour/shape/object vocabulary, same code as Object HalBench.

Reads ``<benchmark>/tiny_world.jsonl`` (``id``, ``image`` relative to the file, ``question``,
``truth``: the canonical words present) and ``<benchmark>/vocabulary.json`` (``{"objects":
{canonical: [synonyms]}}``). A mention is hallucinated when its canonical word is not in ``truth``:
an absent object ("and a dog") or a wrong colour/shape. When ``vocabulary.json`` also gives the
world's caption ``grammar`` (a regular expression), ``well_formed`` is the share of responses it
matches in full: the general-quality guard (a model that hallucinates less by writing broken
sentences is worse, not better).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from damo.eval.chair import ChairItem, Vocabulary, chair_metrics
from damo.eval.items import (
    Answers,
    BenchContext,
    BenchmarkDataError,
    EvalItem,
    by_id,
    iter_jsonl,
    read_json,
    write_jsonl,
)

NAME = "tiny_world"


def benchmark_dir(ctx: BenchContext) -> Path:
    """``evaluate.data["tiny_world"]``, else ``<pipeline.tiny_world_dir>/benchmark``."""
    if NAME in ctx.config.evaluate.data:
        return ctx.data_path(NAME)
    return Path(ctx.config.pipeline.tiny_world_dir) / "benchmark"


def load_vocabulary(folder: Path) -> Vocabulary:
    data = read_json(folder / "vocabulary.json")
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, dict) or not objects:
        raise BenchmarkDataError(f"{folder}/vocabulary.json: expected {{'objects': {{word: [synonyms]}}}}")
    return Vocabulary.from_objects(objects)


def load_grammar(folder: Path) -> re.Pattern[str] | None:
    """The caption grammar of ``vocabulary.json`` (``"grammar"``), or None when it gives none."""
    data = read_json(folder / "vocabulary.json")
    grammar = data.get("grammar") if isinstance(data, dict) else None
    if grammar is None:
        return None
    try:
        return re.compile(str(grammar))
    except re.error as err:
        raise BenchmarkDataError(f"{folder}/vocabulary.json: 'grammar' is not a regular expression: "
                                 f"{err}") from err


def load_items(ctx: BenchContext) -> list[EvalItem]:
    folder = benchmark_dir(ctx)
    path = folder / "tiny_world.jsonl"
    if not path.is_file():
        raise BenchmarkDataError(f"{path} does not exist: build the tiny world (damo tiny-world) or set "
                                 "evaluate.data.tiny_world to its benchmark folder")
    items = []
    for rec in iter_jsonl(path):
        try:
            items.append(EvalItem(str(rec["id"]), rec["question"], folder / rec["image"],
                                  {"truth": list(rec["truth"])}))
        except KeyError as err:
            raise BenchmarkDataError(f"{path}: record {rec.get('id')!r} lacks {err}") from err
    return ctx.limited(items)


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    vocab = load_vocabulary(benchmark_dir(ctx))
    chair_items = []
    for item, text in by_id(answers, items, NAME):
        # truth words may be synonyms; CHAIR compares canonical classes
        truth = frozenset(vocab.canonical.get(w, w) for w in item.meta["truth"])
        chair_items.append(ChairItem(item.id, text, truth))
    metrics, details = chair_metrics(chair_items, vocab)
    metrics.update(_probe_rates(chair_items, details, items, vocab))
    grammar = load_grammar(benchmark_dir(ctx))
    metrics["well_formed"] = (sum(grammar.fullmatch(ci.text.strip()) is not None for ci in chair_items)
                              / len(chair_items) if grammar is not None and chair_items else None)
    write_jsonl(ctx.out / f"details.{group}.jsonl", details)
    return metrics


def _probe_rates(chair_items: list[ChairItem], details: list[dict[str, Any]], items: list[EvalItem],
                 vocab: Vocabulary) -> dict[str, float | None]:
    """The probe's two rates (notes/tiny-world-probe.md), from the CHAIR details.

    ``exact``: share of responses whose mentioned classes are exactly the image's classes.
    ``extra_object_rate``: share of responses mentioning a class no benchmark image contains (the
    world's hallucination-only objects, found from the data: classes outside every ``truth``).
    """
    if not details:
        return {"exact": None, "extra_object_rate": None}
    seen = {vocab.canonical.get(w, w) for it in items for w in it.meta["truth"]}
    exact = sum({cls for _, cls in d["mentions"]} == set(ci.truth) for ci, d in zip(chair_items, details))
    extra = sum(any(cls not in seen for _, cls in d["mentions"]) for d in details)
    return {"exact": exact / len(details), "extra_object_rate": extra / len(details)}
