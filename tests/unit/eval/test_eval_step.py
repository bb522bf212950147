"""The evaluate step end to end: generation plumbing and resume, --answers scoring, the report, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from evalfiles import context, png, write_json, write_jsonl

from damo.cli import main
from damo.config import DecodingConfig, load_config
from damo.eval import tiny_world
from damo.eval.generation import generate_answers
from damo.eval.items import BenchmarkDataError, EvalItem, iter_jsonl
from damo.steps.evaluate import EvaluatePaths, run


def _lines(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def test_generation_is_batched_incremental_and_resumes(tmp_path: Path) -> None:
    """5 items, batches of 2: a first run over 3 items asks [a b] [c]; the rerun over all 5 asks only
    [d e]; every record keeps its decoding settings and the item's meta."""
    items = [EvalItem(k, f"q {k}", png(), {"truth": [k]}) for k in "abcde"]
    asked: list[list[str]] = []

    def responder(batch: Sequence[EvalItem], decoding: DecodingConfig) -> list[str]:
        asked.append([it.id for it in batch])
        return [f"answer {it.id}" for it in batch]

    beam = DecodingConfig(name="beam3", num_beams=3)
    path = tmp_path / "answers.x.beam3.jsonl"
    generate_answers(responder, items[:3], beam, path, benchmark="x", model="m", batch_size=2)
    records = generate_answers(responder, items, beam, path, benchmark="x", model="m", batch_size=2)
    assert asked[:3] == [["a", "b"], ["c"], ["d", "e"]]
    assert [r["answer"] for r in records] == [f"answer {k}" for k in "abcde"]
    assert records[0]["decoding_config"]["num_beams"] == 3 and records[0]["truth"] == ["a"]
    assert len(_lines(path)) == 5
    with path.open("a") as f:
        f.write('{"id": "f", "answ')  # an interrupted write: an error on read, cut before appending
    with pytest.raises(BenchmarkDataError, match=r"jsonl:6: not JSON"):
        _lines(path)
    more = [*items, EvalItem("f", "q f", png())]
    generate_answers(responder, more, beam, path, benchmark="x", model="m", batch_size=2)
    assert [r["id"] for r in _lines(path)] == list("abcdef")
    with pytest.raises(BenchmarkDataError, match="decoded with"):
        generate_answers(responder, items, DecodingConfig(name="beam3"), path, benchmark="x", model="m",
                         batch_size=2)


def test_several_samples_per_prompt_are_scored_against_their_item(tmp_path: Path) -> None:
    """Two samples of t1 (truth red, circle): "a red circle" (clean), "a red dog" (dog hallucinated);
    of t2 (blue, square): "a blue square" twice. chair_response = 1 / 4 samples;
    chair_mention = 1 hallucinated (dog) / 8 mentions (2 per answer) = 1/8."""
    folder = _hand_world(tmp_path)
    config = load_config("tiny", [f"evaluate.data.tiny_world={folder}"])
    ctx = context(tmp_path, [f"evaluate.data.tiny_world={folder}"])
    texts = {"t1#0": "a red circle", "t1#1": "a red dog", "t2#0": "a blue square", "t2#1": "a blue square"}
    sampled = DecodingConfig(name="sampled", do_sample=True, samples=2)
    items = tiny_world.load_items(ctx)
    answers = generate_answers(lambda batch, d: [texts[it.id] for it in batch], items, sampled,
                               tmp_path / "a.jsonl", benchmark="tiny_world", model="m",
                               batch_size=config.evaluate.batch_size)
    assert [(r["id"], r["item_id"], r["sample"]) for r in answers[:2]] == [("t1#0", "t1", 0),
                                                                          ("t1#1", "t1", 1)]
    m = tiny_world.score(ctx, items, answers, "tiny_world")
    assert (m["responses"], m["chair_response"], m["chair_mention"]) == (4, 0.25, 1 / 8)
    with pytest.raises(ValueError, match="needs do_sample"):
        DecodingConfig(name="greedy", samples=2)


def _hand_world(tmp_path: Path) -> Path:
    folder = tmp_path / "world" / "benchmark"
    objects = {"red": ["red"], "blue": ["blue"], "circle": ["circles"], "square": ["squares"],
               "dog": ["dogs"]}
    grammar = r"There is a (?:red|blue) (?:circle|square)(?: and a dog)?\."
    write_json(folder / "vocabulary.json", {"objects": objects, "grammar": grammar})
    write_jsonl(folder / "tiny_world.jsonl", [
        {"id": "t1", "image": "images/t1.png", "question": "What do you see?", "truth": ["red", "circle"]},
        {"id": "t2", "image": "images/t2.png", "question": "What do you see?", "truth": ["blue", "square"]}])
    return folder


def test_answers_file_is_scored_without_generating(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Sampled (primary → group tiny_world): t1 "red circle and a dog" → dog hallucinated (1 of 3),
    t2 "blue square" → 0 of 2: chair_response 1/2, chair_mention 1/5, recall 4/4.
    Greedy (→ tiny_world_greedy): t1 "blue circle" → blue hallucinated (1 of 2), t2 "Squares!" → 0 of 1:
    chair_response 1/2, chair_mention 1/3, recall (1 + 1)/4.
    Probe rates: sampled exact 1/2 (t2), extra objects 1/2 (dog is in no image's truth); greedy exact 0
    ({blue, circle} ≠ {red, circle}; {square} ≠ {blue, square}), extra objects 0 (blue is t2's).
    Well-formed (the vocabulary's grammar): both sampled answers; greedy "Squares!" is not → 1/2."""
    folder = _hand_world(tmp_path)
    answers = write_jsonl(tmp_path / "answers.jsonl", [
        {"id": "t1", "decoding": "sampled", "answer": "There is a red circle and a dog."},
        {"id": "t2", "decoding": "sampled", "answer": "There is a blue square."},
        {"id": "t1", "decoding": "greedy", "answer": "There is a blue circle."},
        {"id": "t2", "decoding": "greedy", "answer": "Squares!"}])
    out = tmp_path / "eval"
    code = main(["evaluate", "--config", "tiny", "--answers", str(answers), "--out", str(out),
                 "--set", f"evaluate.data.tiny_world={folder}"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["headline"]["tiny_world.chair_mention"] == pytest.approx(0.2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tiny_world"]["chair_response"] == pytest.approx(0.5)
    assert metrics["tiny_world"]["object_recall"] == pytest.approx(1.0)
    assert metrics["tiny_world_greedy"]["chair_mention"] == pytest.approx(1 / 3)
    assert metrics["tiny_world_greedy"]["object_recall"] == pytest.approx(0.5)
    sampled, greedy = metrics["tiny_world"], metrics["tiny_world_greedy"]
    assert (sampled["exact"], sampled["extra_object_rate"]) == (0.5, 0.5)
    assert (greedy["exact"], greedy["extra_object_rate"]) == (0, 0)
    assert (sampled["well_formed"], greedy["well_formed"]) == (1.0, 0.5)
    assert printed["headline"]["tiny_world_greedy.well_formed"] == 0.5
    report = (out / "report.md").read_text()
    assert report.index("| extra_object_rate |") < report.index("| avg_length |")  # headlines lead
    assert (out / "config.yaml").is_file() and (out / "result.json").is_file()
    assert "## tiny_world_greedy" in (out / "report.md").read_text()
    assert "Scorer: CHAIR: damo rule lemmatiser (tiny world vocabulary)" in (out / "report.md").read_text()


def test_an_answer_for_an_unknown_item_is_an_error(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": "nope", "answer": "a dog"}])
    config = load_config("tiny", [f"evaluate.data.tiny_world={_hand_world(tmp_path)}"])
    with pytest.raises(BenchmarkDataError, match="'nope' is not an item"):
        run(config, EvaluatePaths(out=tmp_path / "eval", answers=answers))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the tiny model: on this shared 2-core box, 3× faster than two (contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_generates_with_a_tiny_llava_compares_with_baseline_and_resumes(tmp_path: Path,
                                                                        tiny_world_quick: Path) -> None:
    """The untrained tiny world's policy as model and baseline: both columns, decodings recorded; the
    sampled answers are identical (seeds follow item ids), and a rerun with more items keeps the old ones."""
    decodings = "[{name: sampled, do_sample: true, samples: 2}, {name: greedy}]"
    overrides = [f"evaluate.data.tiny_world={tiny_world_quick / 'benchmark'}", "evaluate.limit=2",
                 "evaluate.batch_size=2", "evaluate.max_new_tokens=4",
                 f"evaluate.decoding.tiny_world={decodings}"]
    policy = str(tiny_world_quick / "policy")
    out = tmp_path / "eval"
    run(load_config("tiny", overrides), EvaluatePaths(out=out, model=policy, baseline=policy))
    sampled = _lines(out / "answers.tiny_world.sampled.jsonl")  # 2 images × 2 samples
    assert [r["id"] for r in sampled] == [f"{sampled[k]['item_id']}#{k % 2}" for k in range(4)]
    assert sampled[0]["decoding_config"]["do_sample"] is True
    assert json.loads((out / "metrics.json").read_text())["tiny_world"]["responses"] == 4
    baseline_sampled = _lines(out / "baseline" / "answers.tiny_world.sampled.jsonl")
    assert [r["answer"] for r in sampled] == [r["answer"] for r in baseline_sampled]
    assert _lines(out / "answers.tiny_world.greedy.jsonl")[0]["decoding_config"]["do_sample"] is False
    report = (out / "report.md").read_text()
    assert "| metric | baseline | model | Δ (model − baseline) |" in report
    assert (out / "plots" / "tiny_world.png").stat().st_size > 0
    baseline_metrics = json.loads((out / "baseline" / "metrics.json").read_text())
    assert set(baseline_metrics) == {"tiny_world", "tiny_world_greedy"}
    run(load_config("tiny", [*overrides, "evaluate.limit=3"]), EvaluatePaths(out=out, model=policy))
    resumed = _lines(out / "answers.tiny_world.sampled.jsonl")
    assert resumed[:4] == sampled and len(resumed) == 6


def test_evaluate_needs_a_model_or_answers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        run(context(tmp_path).config, EvaluatePaths(out=tmp_path))
