"""LLaVA-Bench (in the wild): 60 questions on 24 images, a judge compares the answer with GPT-4's.

Data (``evaluate.data["llava_bench"]``, the folder of the LLaVA release): ``questions.jsonl``
(``question_id``, ``image``, ``text``, ``category``), ``context.jsonl`` (``image``, ``caption``),
``answers_gpt4.jsonl`` (``question_id``, ``text``) and ``images/``. The judge reads the caption, the
question, the reference as Assistant 1 and the model's answer as Assistant 2, and puts two 1–10
scores on its first line. Relative score = mean(model) / mean(reference) × 100, overall and per
category; a reply without two scores stays unscored and is counted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from damo.eval.items import Answers, BenchContext, EvalItem, by_id, iter_jsonl
from damo.eval.judge import Judge, judge_all, judge_unavailable

NAME = "llava_bench"
SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
RULE = ("We would like to request your feedback on the performance of two AI assistants in response to "
        "the user question displayed above. The user asks the question on observing an image; for your "
        "reference, the visual content is described in the context above.\nRate the helpfulness, "
        "relevance, accuracy and level of detail of their responses. Each assistant receives an overall "
        "score on a scale of 1 to 10, where a higher score means better overall performance.\nOutput a "
        "single line containing only the two scores, for Assistant 1 and 2, separated by a space. In the "
        "following lines, explain your evaluation without bias, and make sure the order in which the "
        "responses were presented does not affect your judgment.")


def load_items(ctx: BenchContext) -> list[EvalItem]:
    folder = ctx.data_path(NAME)
    captions = {r["image"]: r["caption"] for r in iter_jsonl(folder / "context.jsonl")}
    references = {str(r["question_id"]): r["text"] for r in iter_jsonl(folder / "answers_gpt4.jsonl")}
    items = []
    for q in iter_jsonl(folder / "questions.jsonl"):
        qid = str(q["question_id"])
        items.append(EvalItem(qid, q["text"], folder / "images" / q["image"],
                              {"category": q["category"], "caption": captions.get(q["image"], ""),
                               "reference": references[qid]}))
    return ctx.limited(items)


def _rules(ctx: BenchContext) -> dict[str, str]:
    """category → rule text; a LLaVA-style rule.json ({"llava_bench_<cat>": {"prompt": ...}}) overrides."""
    path = ctx.config.evaluate.judge.llava_bench_rule
    if path is None:
        return {}
    rules = json.loads(Path(path).read_text())
    return {key.removeprefix("llava_bench_"): value["prompt"] for key, value in rules.items()}


def build_prompt(item: EvalItem, answer: str, rule: str) -> str:
    return (f"[Context]\n{item.meta['caption']}\n\n[Question]\n{item.question}\n\n"
            f"[Assistant 1]\n{item.meta['reference']}\n\n[End of Assistant 1]\n\n"
            f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n[System]\n{rule}\n\n")


def parse_scores(text: str) -> tuple[float, float] | None:
    """The two scores of the first line ("8 6", "8, 6"), or None."""
    first = text.strip().split("\n")[0].replace(",", " ").split()
    if len(first) != 2:
        return None
    try:
        return float(first[0]), float(first[1])
    except ValueError:
        return None


def aggregate(scored: list[tuple[str, tuple[float, float] | None]]) -> dict[str, Any]:
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for category, pair in scored:
        if pair is not None:
            groups[category].append(pair)
            groups["all"].append(pair)

    def summary(pairs: list[tuple[float, float]]) -> dict[str, float | None]:
        ref = sum(p[0] for p in pairs) / len(pairs)
        model = sum(p[1] for p in pairs) / len(pairs)
        return {"relative_score": model / ref * 100 if ref else None, "reference_score": ref,
                "model_score": model}

    out: dict[str, Any] = {cat: summary(pairs) for cat, pairs in sorted(groups.items()) if cat != "all"}
    overall = summary(groups["all"]) if groups["all"] else {"relative_score": None}
    out.update(overall)
    out["scored"] = len(groups["all"])
    out["unscored"] = len(scored) - len(groups["all"])
    return out


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    judge_config = ctx.config.evaluate.judge
    reason = judge_unavailable(judge_config)
    if reason is not None:
        return {"skipped": reason}
    rules = _rules(ctx)
    pairs = by_id(answers, items, NAME)
    prompts = [(it.id, build_prompt(it, text, rules.get(it.meta["category"], RULE))) for it, text in pairs]
    raw = judge_all(Judge(judge_config), prompts, ctx.out / f"judge.{group}.jsonl", system=SYSTEM)
    metrics = aggregate([(it.meta["category"], parse_scores(raw[it.id]["judge_output"])) for it, _ in pairs])
    metrics["judge_model"] = sorted({raw[it.id]["judge_model"] for it, _ in pairs})
    return metrics
