"""Object HalBench (RLHF-V/RLAIF-V): 300 COCO val2014 images, detailed descriptions, scored by CHAIR.

Prompts: RLAIF-V's ``obj_halbench_300_with_image.jsonl`` (``image_id``, ``question``, ``image`` as
base64), ``evaluate.data["object_halbench"]``. Ground truth per image: the classes of its COCO
instance annotations ∪ the classes its human COCO captions mention (matched with the same code as
responses), from ``instances_{train,val}2014.json`` and ``captions_{train,val}2014.json`` in
``evaluate.data["coco_annotations"]`` (whichever of train/val are present). The vocabulary is RLAIF-V's
``synonyms_refine.txt`` at ``evaluate.data["coco_synonyms"]`` (CC BY-NC 4.0 data, so read from a
configured path rather than bundled). Matching: :mod:`damo.eval.chair` (RLAIF-V's exact-match path;
``evaluate.chair_deviations`` switches on named departures, none by default).
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from pathlib import Path
from typing import Any

from damo.eval.chair import ChairItem, Vocabulary, chair_metrics, classes_in, load_synonyms
from damo.eval.items import (
    Answers,
    BenchContext,
    BenchmarkDataError,
    EvalItem,
    answer_text,
    iter_jsonl,
    read_json,
    write_jsonl,
)

NAME = "object_halbench"


def load_items(ctx: BenchContext) -> list[EvalItem]:
    path = ctx.data_path(NAME)
    items: list[EvalItem] = []
    seen: set[str] = set()
    for rec in iter_jsonl(path):
        image_id = str(rec.get("image_id"))
        if image_id in seen:
            raise BenchmarkDataError(f"{path}: image_id {image_id} appears twice; ids must be unique")
        seen.add(image_id)
        try:
            image = base64.b64decode(rec["image"], validate=False)
        except (KeyError, binascii.Error) as err:
            raise BenchmarkDataError(f"{path}: image_id {image_id} has no base64 'image' ({err})") from err
        items.append(EvalItem(image_id, rec["question"], image, {"image_id": int(image_id)}))
    return ctx.limited(items)


def _annotation_files(folder: Path, kind: str) -> list[Path]:
    files = [folder / f"{kind}_{split}2014.json" for split in ("val", "train")]
    files = [f for f in files if f.is_file()]
    if not files:
        raise BenchmarkDataError(f"{folder}: no {kind}_val2014.json or {kind}_train2014.json "
                                 "(COCO 2014 annotations, evaluate.data.coco_annotations)")
    return files


def coco_ground_truth(folder: Path, image_ids: set[int], vocab: Vocabulary) -> dict[int, frozenset[str]]:
    """image id → canonical classes from instance annotations ∪ classes mentioned by captions."""
    truth: dict[int, set[str]] = defaultdict(set)
    for path in _annotation_files(folder, "instances"):
        data = read_json(path)
        names = {c["id"]: c["name"] for c in data["categories"]}
        for ann in data["annotations"]:
            if ann["image_id"] in image_ids:
                name = names[ann["category_id"]]
                truth[ann["image_id"]].add(vocab.canonical.get(name, name))
    for path in _annotation_files(folder, "captions"):
        for ann in read_json(path)["annotations"]:
            if ann["image_id"] in image_ids:
                truth[ann["image_id"]] |= classes_in(ann["caption"], vocab)
    return {i: frozenset(truth.get(i, set())) for i in image_ids}


def _image_id(record: dict[str, Any]) -> int:
    raw = record.get("image_id", record.get("id"))
    try:
        return int(str(raw))
    except ValueError as err:
        raise BenchmarkDataError(f"{NAME}: answer {record!r:.80} has no integer image_id") from err


def score(ctx: BenchContext, items: list[EvalItem], answers: Answers, group: str) -> dict[str, Any]:
    """CHAIR metrics of ``answers`` (``items`` are not needed: answers carry their ``image_id``)."""
    vocab = load_synonyms(ctx.data_path("coco_synonyms"))
    vocab = vocab.with_deviations(ctx.config.evaluate.chair_deviations)
    ids = [_image_id(rec) for rec in answers]
    truth = coco_ground_truth(ctx.data_path("coco_annotations"), set(ids), vocab)
    chair_items = [ChairItem(str(i), answer_text(rec), truth[i]) for i, rec in zip(ids, answers)]
    metrics, details = chair_metrics(chair_items, vocab)
    write_jsonl(ctx.out / f"details.{group}.jsonl", details)
    return metrics
