"""Parity with the official scorers: damo's numbers equal theirs on fixtures written to hit every rule.

The expected values in ``parity/<benchmark>/expected.json`` were produced once by the official code
(RLHF-V/RLAIF-V ``eval/eval_gpt_obj_halbench.py``, junyangwang0410/AMBER ``inference.py``,
haotian-liu/LLaVA ``llava/eval/eval_pope.py``; repository, commit and nltk version are in each file's
``provenance``) by ``scripts/parity_official.py``, which regenerates them from checkouts.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from evalfiles import context

from damo.eval import amber, nltk_text, object_halbench, pope
from damo.eval.items import BenchmarkDataError

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


# ----------------------------------------------------------------------------------------------- AMBER
AMBER_SECTIONS = {"Generative Task": "generative", "Descriminative Task": "discriminative",
                  "Exsitence": "existence", "Attribute": "attribute", "State": "state", "Number": "number",
                  "Action": "action", "Relation": "relation"}  # inference.py's headings (its spelling)


def _read(name: str) -> Any:
    return json.loads((PARITY / "amber" / name).read_text())


def _amber_run(similarity: amber.Similarity | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """damo's AMBER scorer with the stand-ins the official run used for spaCy en_core_web_lg and
    NLTK's perceptron tagger (parity/standins.py); everything else is damo's own code."""
    fx = PARITY / "amber"
    standins = _standins()
    read = _read
    safe_words = {w.strip() for w in (fx / "data" / "safe_words.txt").read_text().splitlines() if w.strip()}
    similarity = similarity or amber.spacy_similarity(standins.VectorNlp(read("vectors.json")))
    scorer = amber.GenerativeScorer(
        read("data/relation.json"), safe_words, amber.nltk_nouns(standins.LookupTagger(read("tags.json"))),
        similarity, threshold=0.8)
    responses = [(str(r["id"]), r["response"]) for r in read("responses.json")]
    return amber.evaluate(read("data/annotations.json"), responses, scorer, rule="exact")


def _standins() -> Any:
    spec = importlib.util.spec_from_file_location("standins", PARITY / "standins.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_amber_printed_metrics_equal_the_official_inference_py() -> None:
    """Generative CHAIR/Cover/Hal/Cog and discriminative accuracy/precision/recall/F1 overall and per
    dimension, as inference.py prints them (0.001-started counters, rounding, F1 of rounded P/R)."""
    metrics, _ = _amber_run()
    official = expected("amber")["printed"]
    mine = metrics["official"]
    assert set(mine) == set(AMBER_SECTIONS.values())
    for heading, name in AMBER_SECTIONS.items():
        assert mine[name] == {k.lower(): v for k, v in official[heading].items()}, heading


def test_amber_fractions_agree_with_the_official_percentages() -> None:
    """The exact-denominator fractions damo also reports round to the official figures (up to the
    0.001 start of the official counters)."""
    metrics, details = _amber_run()
    official = expected("amber")["printed"]["Generative Task"]
    for key, heading in (("chair", "CHAIR"), ("cover", "Cover"), ("hal", "Hal"), ("cog", "Cog")):
        assert metrics["generative"][key] * 100 == pytest.approx(official[heading], abs=0.1)
    # as inference.py: no lower-casing, so the sentence-initial "Plates" is no vocabulary noun
    assert "plate" not in details[2]["nouns"] and "cup" in details[2]["nouns"]
    # "car" (a hallu target of answer 6) is not hallucinated: the stand-in similarity finds it close
    # to "wheel", an association of the truth object bicycle; "sock" is close to nothing and is
    assert details[5]["hallucinated"] == ["sock"] and "car" in details[5]["nouns"]


def test_amber_with_a_real_spacy_model_of_the_stand_in_vectors_equals_official(tmp_path: Path) -> None:
    """damo's own resource path: ``load_spacy`` loads a spaCy pipeline from disk (here a blank English
    one carrying the stand-in vector table, since en_core_web_lg cannot be had) and spaCy itself
    computes the similarities; the printout equals the official run's."""
    import numpy as np
    import spacy  # a dev dependency (AMBER's similarity engine); the model is built here

    nlp = spacy.blank("en")
    for word, vector in _read("vectors.json").items():
        nlp.vocab.set_vector(word, np.asarray(vector, dtype=np.float32))
    nlp.to_disk(tmp_path / "tiny_vectors")
    with pytest.warns(UserWarning, match="empty vectors"):  # spaCy's own warning for a word without one
        metrics, _ = _amber_run(amber.load_spacy(str(tmp_path / "tiny_vectors")))
    official = expected("amber")["printed"]["Generative Task"]
    assert metrics["official"]["generative"] == {k.lower(): v for k, v in official.items()}


def test_amber_spacy_model_that_cannot_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match="amber_similarity=null"):
        amber.load_spacy(str(tmp_path / "no-such-model"))


def test_perceptron_tagger_is_loaded_from_the_nltk_data_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The official tagger's file cannot be had here: a tiny one trained now, saved where NLTK's would
    lie, shows that damo loads whatever ``$DAMO_NLTK_DATA`` holds and tags with it."""
    from nltk.tag.perceptron import PerceptronTagger

    path = tmp_path / nltk_text.TAGGER_FILE
    path.parent.mkdir(parents=True)
    sentence = [("a", "DT"), ("dog", "NN"), ("runs", "VBZ")]
    PerceptronTagger(load=False).train([sentence] * 3, save_loc=str(path))
    monkeypatch.setenv(nltk_text.DATA_ENV, str(tmp_path))
    nltk_text.perceptron_tagger.cache_clear()
    try:
        assert nltk_text.perceptron_tagger()(["a", "dog", "runs"]) == sentence
    finally:
        nltk_text.perceptron_tagger.cache_clear()


# ----------------------------------------------------------------------------------------------- POPE
def test_pope_metrics_equal_llava_eval_pope_per_split(tmp_path: Path) -> None:
    fx = PARITY / "pope"
    ctx = context(tmp_path, [f"evaluate.data.pope={fx}", "evaluate.pope_splits=[random, adversarial]"],
                  generate=False)
    answers = [r for split in ("random", "adversarial") for r in _jsonl(fx / f"answers_{split}.jsonl")]
    metrics = pope.score(ctx, pope.load_items(ctx), answers, "pope")
    for split, theirs in expected("pope").items():
        if split == "provenance":
            continue
        mine = metrics[split]
        assert (mine["tp"], mine["fp"], mine["tn"], mine["fn"]) == (theirs["tp"], theirs["fp"], theirs["tn"],
                                                                    theirs["fn"])
        for key, their_key in (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"),
                               ("f1", "F1 score"), ("yes_ratio", "Yes ratio")):
            assert mine[key] == pytest.approx(theirs[their_key], rel=1e-12), (split, key)
    assert metrics["scorer"] == "POPE: LLaVA llava/eval/eval_pope.py @c121f04 rule"
