"""CHAIR matching and Object HalBench metrics on hand-built COCO-format fixtures."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from evalfiles import SYNONYMS, coco_annotations, coco_synonyms, context, png, write_jsonl

from damo.eval import nltk_text, object_halbench
from damo.eval.chair import ChairItem, Vocabulary, chair_metrics, mentions, singularize
from damo.eval.items import BenchmarkDataError

VOCAB = Vocabulary.from_synonyms_file(SYNONYMS)


def classes(text: str) -> list[str]:
    return [m.cls for m in mentions(text, VOCAB)]


def test_plurals_are_lemmatised_by_wordnet_as_rlaifv_does() -> None:
    assert classes("Three dogs, two buses? No: two cabs and many children.") == ["dog", "car", "person"]
    # WordNet keeps "men" (a noun of its own): the official path never maps it to person.
    assert classes("The men and women") == ["person"]


def test_men_as_person_is_an_opt_in_deviation_named_in_the_scorer() -> None:
    vocab = VOCAB.with_deviations(["men_as_person"])
    assert [m.cls for m in mentions("The men and women", vocab)] == ["person", "person"]
    assert vocab.scorer.endswith("; deviations: men_as_person")
    with pytest.raises(ValueError, match="unknown CHAIR deviation"):
        VOCAB.with_deviations(["plural_rules"])


def test_split_punctuation_is_an_opt_in_deviation() -> None:
    """NLTK's tokenizer keeps "cup/mug" and "man—probably" whole; the deviation splits them."""
    text = "a dog/puppy and a man—probably a boy"
    assert classes(text) == ["person"]
    split = VOCAB.with_deviations(["split_punctuation"])
    assert [m.cls for m in mentions(text, split)] == ["dog", "dog", "person", "person"]


def test_missing_wordnet_is_a_one_line_error_naming_the_fix(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nltk_text.DATA_ENV, str(tmp_path))
    with pytest.raises(nltk_text.NltkDataError, match="install_nltk_data.sh"):
        classes("a dog")


def test_tiny_world_rule_lemmatiser() -> None:
    """The tiny world's own vocabulary keeps the data-free rule lemmatiser (matcher "rules")."""
    assert singularize("benches", frozenset({"bench"})) == "bench"
    assert singularize("knives", frozenset({"knife"})) == "knife"
    assert singularize("ponies", frozenset({"pony"})) == "pony"
    assert singularize("glasses", frozenset({"glass"})) == "glass"
    assert singularize("boxes", frozenset({"bench"})) == "boxes"  # not a vocabulary word: unchanged


def test_two_word_names_merge_before_single_words() -> None:
    """"hot dogs" is one hot dog (not a dog), "teddy bears" a teddy bear, "dining tables" a table."""
    found = classes("hot dogs and teddy bears on the dining tables")
    assert found == ["hot dog", "teddy bear", "dining table"]
    assert classes("wine glasses") == ["wine glass"]  # "glasses" → "glass" → "wine glass"


def test_synonyms_map_to_their_class_and_quirks_follow_the_list() -> None:
    assert classes("a puppy, a van and a desk") == ["dog", "car", "dining table"]
    assert classes("the bow of the ship") == ["tie"]  # RLAIF-V's list maps bow → tie
    assert classes("a man in a bow tie") == ["person", "tie"]


def test_baby_elephant_is_an_elephant_not_a_person() -> None:
    assert classes("a baby elephant") == ["elephant"]
    assert classes("a baby sleeps") == ["person"]


def test_toilet_seat_rule_drops_every_seat_when_a_toilet_is_mentioned() -> None:
    assert classes("the toilet seat is up") == ["toilet"]  # two-word merge
    assert classes("a toilet; the seat is up; another seat") == ["toilet"]  # the toilet rule
    assert classes("a seat by the window") == ["chair"]


def test_tiny_world_vocabulary_uses_the_same_matching() -> None:
    vocab = Vocabulary.from_objects({"red": ["red"], "circle": ["circle", "circles"], "dog": ["dogs"]})
    assert [m.cls for m in mentions("There is a red circle and two dogs.", vocab)] == ["red", "circle", "dog"]


def test_chair_metrics_by_hand() -> None:
    """Three responses, truth {dog}, {dog}, {car}.

    r1 "a dog and a dog and a bike": mentions dog, dog, bicycle → 1 of 3 hallucinated.
    r2 "nothing to see": no mention. r3 "a van": car, correct.
    chair_response = 1 hallucinated / 2 with objects = 0.5; chair_s = 1/3; chair_mention = 1/4;
    object_recall = (1 + 0 + 1) / (1 + 1 + 1) = 2/3.
    """
    items = [ChairItem("1", "a dog and a dog and a bike", frozenset({"dog"})),
             ChairItem("2", "nothing to see", frozenset({"dog"})),
             ChairItem("3", "a van", frozenset({"car"}))]
    metrics, details = chair_metrics(items, VOCAB)
    assert metrics["chair_response"] == pytest.approx(0.5)
    assert metrics["chair_s"] == pytest.approx(1 / 3)
    assert metrics["chair_mention"] == pytest.approx(0.25)
    assert metrics["object_recall"] == pytest.approx(2 / 3)
    assert details[0]["hallucinated"] == [["bike", "bicycle"]]


def test_chair_ratios_with_empty_denominators_are_none_not_zero() -> None:
    metrics, _ = chair_metrics([ChairItem("1", "nothing", frozenset())], VOCAB)
    assert metrics["chair_response"] is None and metrics["chair_mention"] is None
    assert metrics["chair_s"] == 0.0


def _object_halbench(tmp_path: Path) -> list[str]:
    coco = coco_annotations(
        tmp_path / "coco",
        instances={101: [18, 18, 67], 102: [70], 103: [22], 999: [1]},
        captions={101: ["A puppy sits under a table.", "Two dogs near a man."],
                  102: ["A white toilet in a bathroom.", "The toilet seat is up."],
                  103: ["A baby elephant walks with its mother."]},
        train_captions={104: ["A plate of hot dogs."]})
    questions = [{"image_id": i, "question": "Describe this image in detail.",
                  "image": base64.b64encode(png()).decode()} for i in (101, 102, 103, 104)]
    bench = write_jsonl(tmp_path / "obj_halbench_300_with_image.jsonl", questions)
    return [f"evaluate.data.object_halbench={bench}", f"evaluate.data.coco_annotations={coco}",
            f"evaluate.data.coco_synonyms={coco_synonyms(tmp_path)}"]


def test_coco_ground_truth_joins_instances_and_captions(tmp_path: Path) -> None:
    """101: instances dog, dining table + captions "puppy", "table", "dogs", "man" → +person.
    102: toilet ("toilet seat" merges to toilet, so no chair). 103: elephant ("baby elephant" is not a
    person). 104: no instances; its train-split caption "hot dogs" → hot dog."""
    ctx = context(tmp_path, _object_halbench(tmp_path))
    truth = object_halbench.coco_ground_truth(ctx.data_path("coco_annotations"), {101, 102, 103, 104},
                                              Vocabulary.from_synonyms_file(SYNONYMS))
    assert truth == {101: {"dog", "dining table", "person"}, 102: {"toilet"}, 103: {"elephant"},
                     104: {"hot dog"}}


def test_object_halbench_metrics_by_hand(tmp_path: Path) -> None:
    """Responses (truth from the test above):

    101 "Two dogs lie under the dining tables while a puppy plays with a bike. The dog is happy."
        mentions dog, dining table, dog, bicycle, dog = 5 (dog repeated 3×); bicycle hallucinated → 1;
        correct classes {dog, dining table} = 2 of 3.
    102 "A toilet with the seat up next to a sink." → toilet only (seat dropped, sink not a class):
        1 mention, 0 hallucinated; correct 1 of 1.
    103 "A baby elephant stands beside two men in bow ties holding cell phones."
        elephant, tie (bow ties), cell phone = 3 ("men" stays "men" in WordNet: no person),
        2 hallucinated; correct 1 of 1.
    104 "A close-up photo of food on a plate." → no class; correct 0 of 1.
    chair_response = 2 / 3 responses with objects; chair_s = 2 / 4; chair_mention = 3 / 9;
    object_recall = (2 + 1 + 1 + 0) / (3 + 1 + 1 + 1) = 4 / 6.
    """
    ctx = context(tmp_path, _object_halbench(tmp_path))
    texts = {101: "Two dogs lie under the dining tables while a puppy plays with a bike. The dog is happy.",
             102: "A toilet with the seat up next to a sink.",
             103: "A baby elephant stands beside two men in bow ties holding cell phones.",
             104: "A close-up photo of food on a plate."}
    answers = [{"image_id": i, "question": "q", "text": t} for i, t in texts.items()]  # RLAIF-V's format
    items = object_halbench.load_items(ctx)
    assert [it.id for it in items] == ["101", "102", "103", "104"]
    assert items[0].load_image().size == (8, 8)
    metrics = object_halbench.score(ctx, items, answers, "object_halbench")
    assert metrics["chair_response"] == pytest.approx(2 / 3)
    assert metrics["chair_s"] == pytest.approx(0.5)
    assert metrics["chair_mention"] == pytest.approx(3 / 9)
    assert metrics["object_recall"] == pytest.approx(4 / 6)
    assert (metrics["mentions"], metrics["hallucinated_mentions"]) == (9, 3)
    assert (ctx.out / "details.object_halbench.jsonl").read_text().count("\n") == 4


def test_duplicate_image_ids_are_refused(tmp_path: Path) -> None:
    row = {"image_id": 7, "question": "q", "image": base64.b64encode(png()).decode()}
    bench = write_jsonl(tmp_path / "b.jsonl", [row, row])
    with pytest.raises(BenchmarkDataError, match="appears twice"):
        object_halbench.load_items(context(tmp_path, [f"evaluate.data.object_halbench={bench}"]))


def test_missing_data_key_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"evaluate.data\['object_halbench'\] is not set"):
        object_halbench.load_items(context(tmp_path))
