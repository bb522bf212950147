"""Evaluate refuses what would give a false number (issue 15, finding 5): missing answers, duplicate
answers, malformed lines. Missing answers can be lowered to a recorded coverage, which the report shows
and the registry gate refuses to promote on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evalfiles import write_json, write_jsonl

from damo.cli import main
from damo.config import load_config
from damo.eval.items import BenchmarkDataError
from damo.model_card import gate_decision
from damo.steps.evaluate import EvaluatePaths, run


def _world(tmp_path: Path, n: int = 4) -> Path:
    folder = tmp_path / "world" / "benchmark"
    objects = {"red": ["red"], "circle": ["circles"], "dog": ["dogs"]}
    write_json(folder / "vocabulary.json", {"objects": objects})
    write_jsonl(folder / "tiny_world.jsonl", [
        {"id": f"t{i}", "image": f"images/t{i}.png", "question": "What?", "truth": ["red", "circle"]}
        for i in range(n)])
    return folder


def _score(tmp_path: Path, answers: Path, *extra: str) -> Path:
    config = load_config("tiny", [f"evaluate.data.tiny_world={_world(tmp_path)}", *extra])
    run(config, EvaluatePaths(out=tmp_path / "eval", answers=answers))
    return tmp_path / "eval"


def test_answers_for_part_of_the_items_are_an_error_not_a_perfect_score(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": "t0", "answer": "a red circle"}])
    with pytest.raises(BenchmarkDataError, match=r"no answer for 3 of 4 items .*allow_missing_answers"):
        _score(tmp_path, answers)
    assert not (tmp_path / "eval" / "metrics.json").exists()  # no number was written


def test_allowed_missing_answers_record_coverage_shown_in_the_report_and_the_gate_refuses(
        tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": "t0", "answer": "a red circle"}])
    out = _score(tmp_path, answers, "evaluate.allow_missing_answers=true")
    metrics = json.loads((out / "metrics.json").read_text())["tiny_world"]
    assert (metrics["coverage"], metrics["answered"], metrics["items"]) == (0.25, 1, 4)
    assert "coverage" in (out / "report.md").read_text()
    candidate = {"tiny_world.chair_response": 0.0, "tiny_world.coverage": 0.25}
    promote, reason = gate_decision({"tiny_world.chair_response": "min"}, candidate, None, None)
    assert not promote and "tiny_world.coverage" in reason
    assert gate_decision({"tiny_world.chair_response": "min"}, {**candidate, "tiny_world.coverage": 1.0},
                         None, None)[0]


def test_duplicate_answers_are_an_error(tmp_path: Path) -> None:
    records = [{"id": f"t{i}", "answer": "a red circle"} for i in range(4)]
    answers = write_jsonl(tmp_path / "a.jsonl", records + [{"id": "t1", "answer": "a dog"}] * 50)
    with pytest.raises(BenchmarkDataError, match=r"'t1' 51 times"):
        _score(tmp_path, answers)


def test_a_malformed_last_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": f"t{i}", "answer": "a red circle"} for i in range(4)])
    with answers.open("a") as f:
        f.write('{"id": "t9", "answer": "a d')
    with pytest.raises(BenchmarkDataError, match=r"a\.jsonl:5: not JSON"):
        _score(tmp_path, answers)


@pytest.mark.parametrize("body, match", [
    (None, "does not exist"), (b"\xff\xfe not utf-8\n", "not a readable UTF-8"),
    (b"[1, 2]\n", "expected a JSON object"),
])
def test_bad_answer_files_are_one_line_errors(tmp_path: Path, body: bytes | None, match: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "a.jsonl"
    if body is not None:
        answers.write_bytes(body)
    code = main(["evaluate", "--config", "tiny", "--answers", str(answers), "--out", str(tmp_path / "eval"),
                 "--set", f"evaluate.data.tiny_world={_world(tmp_path)}"])
    err = capsys.readouterr().err
    assert code == 1 and match in err and "Traceback" not in err


def test_an_unknown_benchmark_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = write_jsonl(tmp_path / "a.jsonl", [{"id": "t0", "answer": "x"}])
    code = main(["evaluate", "--config", "tiny", "--answers", str(answers), "--out", str(tmp_path / "eval"),
                 "--set", "evaluate.benchmarks=[nosuchbench]"])
    err = capsys.readouterr().err
    assert code == 1 and "unknown benchmark 'nosuchbench'" in err and "Traceback" not in err
    assert not (tmp_path / "eval").exists()
