"""AMBER and POPE metrics on hand-built fixtures in the benchmarks' file formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalfiles import context, write_json, write_jsonl

from damo.eval import amber, nltk_text, pope
from damo.eval.items import BenchmarkDataError

ANNOTATIONS = [
    {"id": 1, "type": "generative", "truth": ["dog", "grass"], "hallu": ["cat", "frisbee"]},
    {"id": 2, "type": "generative", "truth": ["car"], "hallu": ["person"]},
    {"id": 3, "type": "discriminative-hallucination", "truth": "no"},
    {"id": 4, "type": "discriminative-hallucination", "truth": "yes"},
    {"id": 5, "type": "discriminative-attribute-state", "truth": "no"},
    {"id": 6, "type": "discriminative-attribute-number", "truth": "yes"},
    {"id": 7, "type": "discriminative-attribute-action", "truth": "no"},
    {"id": 8, "type": "discriminative-relation", "truth": "no"},
    {"id": 9, "type": "discriminative-relation", "truth": "yes"},
    {"id": 10, "type": "discriminative-hallucination", "truth": "no"},
]
RELATION = {"dog": ["puppy"], "grass": ["lawn"], "cat": ["kitten"], "frisbee": ["disc"],
            "car": ["wheel", "tire", "light"], "person": ["man", "woman"], "tree": []}
ANSWERS = {
    1: "A puppy runs on the lawn past a tree and a cat. Two kittens watch under a light.",
    2: "A car with a wheel.",
    3: "No, there is no cat.", 4: "Yes", 5: "yes.", 6: "No", 7: "No.", 8: "I cannot tell",
    9: "Yes, it is.", 10: "no",
}


# Neither official resource (spaCy en_core_web_lg, NLTK's perceptron tagger) exists here; these tests
# check the rest with both switched off (test_eval_parity.py checks them with stand-ins).
WITHOUT_RESOURCES = ["evaluate.amber_tagger=none", "evaluate.amber_similarity=null"]


def _amber(tmp_path: Path, parse: str, resources: list[str] = WITHOUT_RESOURCES) -> list[str]:
    data = tmp_path / "AMBER" / "data"
    write_json(data / "annotations.json", ANNOTATIONS)
    write_json(data / "relation.json", RELATION)
    (data / "safe_words.txt").write_text("light\nsign")
    queries = [{"id": a["id"], "image": f"AMBER_{a['id']}.jpg",
                "query": "Describe this image." if a["type"] == "generative" else "Is there a cat?"}
               for a in ANNOTATIONS]
    write_json(data / "query" / "query_all.json", queries)
    (tmp_path / "images").mkdir(exist_ok=True)
    return [f"evaluate.data.amber={data}", f"evaluate.data.amber_images={tmp_path / 'images'}",
            f"evaluate.amber_answer_parse={parse}", *resources]


def _score_amber(tmp_path: Path, parse: str) -> dict:
    return _score_amber_with(tmp_path, _amber(tmp_path, parse))


def _score_amber_with(tmp_path: Path, overrides: list[str]) -> dict:
    ctx = context(tmp_path, overrides)
    items = amber.load_items(ctx)
    answers = [{"id": i, "response": text} for i, text in ANSWERS.items()]  # AMBER's own answer format
    return amber.score(ctx, items, answers, "amber")


def test_amber_items_add_the_short_answer_prompt_to_yes_no_questions_only(tmp_path: Path) -> None:
    items = amber.load_items(context(tmp_path, _amber(tmp_path, "exact")))
    assert items[0].question == "Describe this image."
    assert items[2].question == "Is there a cat?\nAnswer the question using a single word or phrase."
    assert items[2].image == tmp_path / "images" / "AMBER_3.jpg"


def test_amber_generative_metrics_by_hand(tmp_path: Path) -> None:
    """Response 1 (truth dog, grass; hallu cat, frisbee): kept nouns puppy, lawn, tree, cat, kitten, light.
    light is a safe word (counted, never hallucinated); puppy covers dog, lawn covers grass; tree, cat and
    kitten are hallucinated; cat and kitten both cognise the target cat.
    Response 2 (truth car; hallu person): car, wheel → both safe, car covered.
    CHAIR = 3 / 8 nouns; Cover = 3 / 3 truth objects; Hal = 1 / 2 responses; Cog = 1 / 3 hallu targets.
    """
    g = _score_amber(tmp_path, "first_word")["generative"]
    assert g["chair"] == pytest.approx(3 / 8)
    assert g["cover"] == pytest.approx(1.0)
    assert g["hal"] == pytest.approx(0.5)
    assert g["cog"] == pytest.approx(1 / 3)


def test_amber_discriminative_first_word_by_hand(tmp_path: Path) -> None:
    """"No" is positive. First-word parse: 3 no✓(TP) 4 yes✓(TN) 5 yes✗(FN) 6 no✗(FP) 7 no✓(TP)
    8 unparsed (truth no → FN) 9 yes✓(TN) 10 no✓(TP).
    All: TP 3, FP 1, FN 2, TN 2 → Acc 5/8, P 3/4, R 3/5, F1 = 2·.75·.6/1.35 = 2/3.
    Existence (3, 4, 10): all right → 1.0. Attribute (5, 6, 7): TP 1 FP 1 FN 1 → Acc 1/3, F1 0.5.
    Relation (8, 9): Acc 1/2, no "no" answer → precision None, recall 0.
    AMBER score = (1 − 3/8 + 2/3) / 2.
    """
    m = _score_amber(tmp_path, "first_word")
    d = m["discriminative"]
    assert (d["tp"], d["fp"], d["fn"], d["tn"], d["unparsed"]) == (3, 1, 2, 2, 1)
    assert d["accuracy"] == pytest.approx(5 / 8)
    assert d["precision"] == pytest.approx(3 / 4)
    assert d["recall"] == pytest.approx(3 / 5)
    assert d["f1"] == pytest.approx(2 / 3)
    assert d["existence"]["accuracy"] == pytest.approx(1.0)
    assert d["attribute"]["accuracy"] == pytest.approx(1 / 3) and d["attribute"]["f1"] == pytest.approx(0.5)
    assert d["state"]["n"] == d["number"]["n"] == d["action"]["n"] == 1
    assert d["relation"]["precision"] is None and d["relation"]["recall"] == 0.0
    assert m["amber_score"] == pytest.approx((1 - 3 / 8 + 2 / 3) / 2)


def test_amber_exact_parse_is_the_official_case_sensitive_rule(tmp_path: Path) -> None:
    """Exact: only 4 "Yes" (TN) and 6 "No" (FP) parse; every truth-"no" item is a miss (FN 5).
    Acc 1/8, precision 0/1 = 0, recall 0/5 = 0, F1 0."""
    d = _score_amber(tmp_path, "exact")["discriminative"]
    assert (d["tp"], d["fp"], d["fn"], d["tn"], d["unparsed"]) == (0, 1, 5, 1, 6)
    assert d["accuracy"] == pytest.approx(1 / 8)
    assert d["f1"] == 0.0


@pytest.mark.parametrize(("text", "parsed"), [
    ("Yes, there is a dog in the image.", "yes"), ("No, there is not.", "no"),
    ("There is no dog in the image", "no"), ("Not that I can see.", "yes"),  # LLaVA's rule: "Not" ≠ "not"
    ("I think so. No doubt", "yes"), ("no", "no"), ("The dog is not there", "no"),
])
def test_pope_llava_parse_rule(text: str, parsed: str) -> None:
    assert pope.parse_yes_no(text) == parsed


def test_pope_metrics_by_hand(tmp_path: Path) -> None:
    """random: q1 yes→yes TP, q2 no→"No, there is not." TN, q3 no→"There is no dog" TN,
    q4 no→"Not that I can see." parsed yes → FP, q5 yes→"I think so. No doubt" yes TP, q6 yes→"no" FN.
    → Acc 4/6, P 2/3, R 2/3, F1 2/3, yes-ratio 3/6.
    popular: q1 yes→"Yes" TP, q2 no→"Yes." FP → Acc 1/2, P 1/2, R 1, F1 2/3, yes-ratio 1.
    Means over splits: Acc (2/3 + 1/2)/2, F1 2/3, yes-ratio 3/4.
    """
    labels = {"random": ["yes", "no", "no", "no", "yes", "yes"], "popular": ["yes", "no"]}
    texts = {"random": ["Yes, there is a dog in the image.", "No, there is not.",
                        "There is no dog in the image", "Not that I can see.", "I think so. No doubt", "no"],
             "popular": ["Yes", "Yes."]}
    folder = tmp_path / "pope"
    for split, split_labels in labels.items():
        write_jsonl(folder / f"coco_pope_{split}.json",
                    [{"question_id": n + 1, "image": f"COCO_val2014_{n:012d}.jpg",
                      "text": "Is there a dog in the image?", "label": label}
                     for n, label in enumerate(split_labels)])
    ctx = context(tmp_path, [f"evaluate.data.pope={folder}", f"evaluate.data.coco_images={tmp_path}",
                             "evaluate.pope_splits=[random, popular]"], generate=False)
    items = pope.load_items(ctx)
    assert len(items) == 8 and items[0].id == "random/1"
    answers: list[dict[str, object]] = [{"id": f"random/{n + 1}", "answer": t}
                                        for n, t in enumerate(texts["random"])]
    # LLaVA's answer format: question_id + text (+ the split, since ids repeat across splits)
    answers += [{"question_id": n + 1, "split": "popular", "text": t} for n, t in enumerate(texts["popular"])]
    m = pope.score(ctx, items, answers, "pope")
    r, p = m["random"], m["popular"]
    assert (r["tp"], r["tn"], r["fp"], r["fn"]) == (2, 2, 1, 1)
    assert r["accuracy"] == pytest.approx(4 / 6) and r["f1"] == pytest.approx(2 / 3)
    assert r["yes_ratio"] == pytest.approx(0.5)
    assert p["precision"] == pytest.approx(0.5) and p["recall"] == pytest.approx(1.0)
    assert p["yes_ratio"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx((4 / 6 + 0.5) / 2)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(0.75)


def test_amber_official_resources_missing_are_errors_not_fallbacks(tmp_path: Path) -> None:
    """By default AMBER scores as inference.py does: spaCy en_core_web_lg and NLTK's perceptron tagger.
    Neither is installable here, so generative scoring stops with the fix named, never approximates."""
    with pytest.raises(BenchmarkDataError, match=r"en_core_web_lg.*amber_similarity=null"):
        _score_amber_with(tmp_path, _amber(tmp_path, "exact", resources=[]))
    with pytest.raises(nltk_text.NltkDataError, match="averaged_perceptron_tagger"):
        _score_amber_with(tmp_path, _amber(tmp_path, "exact", resources=["evaluate.amber_similarity=null"]))


def test_amber_report_names_its_scorer_and_every_departure(tmp_path: Path) -> None:
    m = _score_amber(tmp_path, "first_word")
    assert m["scorer"] == ("AMBER: inference.py @534babf rules, nltk 3.8.1; "
                           "POS tagger: none (every token, not official); "
                           "similarity: off (exact match only, not official); "
                           "yes/no parse: first_word (not official)")
    assert m["official"]["generative"]["chair"] == 37.5  # 3 / (8 + 0.001) as inference.py prints it
