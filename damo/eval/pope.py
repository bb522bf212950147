"""POPE (Li et al. 2023): yes/no object-existence questions on COCO val2014, three negative samplings.

Question files ``coco_pope_<split>.json`` (JSON lines: ``question_id``, ``image``, ``text``,
``label``) in ``evaluate.data["pope"]``; images in ``evaluate.data["coco_images"]``. Answers are
parsed with LLaVA's rule (``llava/eval/eval_pope.py``): keep the text before the first ".", drop
commas, split on spaces; "No", "no" or "not" among the words → no, anything else → yes. "yes" is
the positive class.
"""

from __future__ import annotations

from typing import Any

from damo.eval.items import Answers, BenchContext, BenchmarkDataError, EvalItem, by_id, iter_jsonl

NAME = "pope"
SCORER = "POPE: LLaVA llava/eval/eval_pope.py @c121f04 rule"


def parse_yes_no(text: str) -> str:
    """LLaVA's POPE rule → "yes" or "no"."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(w in ("No", "no", "not") for w in words) else "yes"


def binary_metrics(preds: list[str], labels: list[str], positive: str) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 for ``positive``; ``None`` where a denominator is 0."""
    tp = sum(p == positive and y == positive for p, y in zip(preds, labels))
    fp = sum(p == positive and y != positive for p, y in zip(preds, labels))
    fn = sum(p != positive and y == positive for p, y in zip(preds, labels))
    tn = sum(p == y and y != positive for p, y in zip(preds, labels))  # an unparsed answer is never right
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / len(preds) if preds else None, "precision": precision, "recall": recall,
            "f1": f1, "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": len(preds)}


def load_items(ctx: BenchContext) -> list[EvalItem]:
    folder = ctx.data_path(NAME)
    images = ctx.image_dir("coco_images")
    suffix = ctx.config.evaluate.short_answer_prompt
    items = []
    for split in ctx.config.evaluate.pope_splits:
        path = folder / f"coco_pope_{split}.json"
        if not path.is_file():
            raise BenchmarkDataError(f"{path} does not exist (POPE split {split!r}, evaluate.pope_splits)")
        split_items = [EvalItem(f"{split}/{rec['question_id']}", f"{rec['text']}\n{suffix}".strip(),
                                images / rec["image"], {"split": split, "label": rec["label"]})
                       for rec in iter_jsonl(path)]
        items += ctx.limited(split_items)
    return items


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    """Per split and the mean over splits: accuracy, precision, recall, F1, yes-ratio."""
    per_split: dict[str, tuple[list[str], list[str]]] = {}
    for item, text in by_id(answers, items, NAME):
        preds, labels = per_split.setdefault(item.meta["split"], ([], []))
        preds.append(parse_yes_no(text))
        labels.append(str(item.meta["label"]).lower())
    metrics: dict[str, Any] = {"parse_rule": "llava_eval_pope", "scorer": SCORER}
    for split, (preds, labels) in per_split.items():
        m = binary_metrics(preds, labels, positive="yes")
        m["yes_ratio"] = preds.count("yes") / len(preds)
        metrics[split] = m
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        values = [metrics[s][key] for s in per_split if metrics[s][key] is not None]
        metrics[key] = sum(values) / len(values) if values else None
    return metrics
