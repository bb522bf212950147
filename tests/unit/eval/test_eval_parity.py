"""Parity with the official scorers: damo's numbers equal theirs on fixtures written to hit every rule.

The expected values in ``parity/<benchmark>/expected.json`` were produced once by the official code
(RLHF-V/RLAIF-V ``eval/eval_gpt_obj_halbench.py``, junyangwang0410/AMBER ``inference.py``,
haotian-liu/LLaVA ``llava/eval/eval_pope.py``; repository, commit and nltk version are in each file's
``provenance``) by ``scripts/parity_official.py``, which regenerates them from checkouts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from evalfiles import context

from damo.eval import object_halbench

PARITY = Path(__file__).parent / "parity"


def expected(name: str) -> dict[str, Any]:
    return json.loads((PARITY / name / "expected.json").read_text())


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def object_halbench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict]]:
    tmp = tmp_path_factory.mktemp("objhal")
    fx = PARITY / "object_halbench"
    ctx = context(tmp, [f"evaluate.data.coco_annotations={fx / 'coco'}",
                        f"evaluate.data.coco_synonyms={fx / 'synonyms.txt'}"], generate=False)
    metrics = object_halbench.score(ctx, [], _jsonl(fx / "answers.jsonl"), "object_halbench")
    return metrics, _jsonl(ctx.out / "details.object_halbench.jsonl")


def test_object_halbench_mentions_and_hallucinations_equal_rlaifv_per_answer(object_halbench_run) -> None:
    """Per answer: the mentioned (word, class) list in order, the hallucinated ones, the truth classes
    built from COCO instances and captions — skies/manes/vanes, men, cup/mug, man—probably, bear…,
    'stop, vases, pitbulls, smartphones, coworkers, busses, grandchildren, toilet seat, baby X,
    home plate, hot dog(s), passenger jet, bow tie, wine glasses, Mr./Dr. abbreviations among them."""
    _, details = object_halbench_run
    official = expected("object_halbench")["sentences"]
    assert len(details) == len(official) == 30
    for mine, theirs in zip(details, official):
        assert mine["mentions"] == theirs["generated"], theirs["caption"]
        assert mine["hallucinated"] == [[w, cls] for w, (_, cls) in theirs["hallucinated"]], theirs["caption"]
        assert mine["truth"] == theirs["gt"], theirs["caption"]


def test_object_halbench_aggregates_equal_rlaifv(object_halbench_run) -> None:
    metrics, _ = object_halbench_run
    official = expected("object_halbench")["overall"]
    assert metrics["chair_response"] == pytest.approx(official["CHAIRs_refine"], rel=1e-12)
    assert metrics["chair_s"] == pytest.approx(official["CHAIRs"], rel=1e-12)
    assert metrics["chair_mention"] == pytest.approx(official["CHAIRi"], rel=1e-12)
    assert metrics["object_recall"] == pytest.approx(official["obj_rec"], rel=1e-12)
    assert metrics["avg_length"] == pytest.approx(official["avg_word_len"], rel=1e-12)
    assert metrics["responses_with_objects"] == official["coco_sentence_num"]
    assert metrics["scorer"] == ("CHAIR: RLAIF-V exact-match (eval_gpt_obj_halbench.py @83d917b), "
                                 "nltk 3.8.1 rules, WordNet 3.0")
