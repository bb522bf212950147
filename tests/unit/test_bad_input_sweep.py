"""A sweep of hostile or careless inputs through `damo.cli.main` and the real `damo` command
(issue 15, finding 6): each is a one-line error naming what is wrong, never a traceback, and leaves
nothing behind (no output folder, no local stack started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from damo.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _files(tmp: Path) -> dict[str, Path]:
    """Bad inputs on disk: answers, configs, a model folder, an ingest source."""
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text("{}")
    (tmp / "src").mkdir()
    (tmp / "src" / "a.jsonl").symlink_to("/etc/passwd")
    (tmp / "trunc.jsonl").write_text('{"id": "t0", "answer": "a"}\n{"id": "t1", "ans')
    (tmp / "list.json").write_text('{"not": "a list"}')
    (tmp / "bad.yaml").write_text("seed: [1\n")
    (tmp / "latin.yaml").write_bytes(b"seed: \xe9\n")
    (tmp / "alias.yaml").write_text("a: &x [1, 2]\ntrain: {loss: {beta: *x}}\n")
    return {"tmp": tmp}


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    out = str(tmp / "out")
    ev = ["evaluate", "--out", out, "--answers"]
    reg = ["register", "--model", str(tmp / "model")]
    return [
        ([*ev, str(tmp / "missing.jsonl")], "does not exist"),
        ([*ev, str(tmp / "trunc.jsonl")], "trunc.jsonl:2: not JSON"),
        ([*ev, str(tmp / "list.json")], "expected a JSON list"),
        ([*ev, str(tmp / "trunc.jsonl"), "--set", "evaluate.benchmarks=[nope]"], "unknown benchmark 'nope'"),
        (["evaluate", "--config", str(tmp / "bad.yaml"), "--out", out, "--answers", "x"], "not valid YAML"),
        (["evaluate", "--config", str(tmp / "latin.yaml"), "--out", out, "--answers", "x"], "not UTF-8"),
        (["evaluate", "--config", str(tmp / "alias.yaml"), "--out", out, "--answers", "x"],
         "alias *x refused"),
        (["evaluate", "--set", "seed=[", "--out", out, "--answers", "x"], "--set seed: not valid YAML"),
        ([*reg, "--name", "a/b"], "model name 'a/b' is not allowed"),
        ([*reg, "--name", ""], "model name '' is not allowed"),
        ([*reg, "--name", "x@y"], "model name 'x@y' is not allowed"),
        ([*reg, "--name", "fine", "--data", "BAD"], "--data BAD: not a readable preference dataset"),
        ([*reg, "--name", "fine", "--metrics", str(tmp / "bad.yaml")], "not JSON"),
        (["register", "--model", str(tmp / "src"), "--name", "fine"], "holds a HF model"),
        (["ingest", "--source", str(tmp / "src"), "--out", out], "outside the source"),
        (["ingest", "--source", str(tmp / "nowhere"), "--out", out], "does not exist"),
        (["pull", "not-a-uri", "--out", out], "is not a registry URI"),
    ]


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_every_bad_input_is_one_line_without_a_traceback_and_leaves_nothing(
        sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in _cases(sweep):
        code = main(argv)
        captured = capsys.readouterr()
        assert code in (1, 2), argv
        assert "Traceback" not in captured.err and message in captured.err, (argv, captured.err)
        assert captured.err.count("\n") == 1 and captured.out == "", (argv, captured)
        assert not (sweep / "out").exists(), argv
        assert not (sweep / ".damo").exists(), argv  # no local stack was started for a bad input


@pytest.mark.parametrize("index", [0, 1, 4, 8, 14])
def test_the_real_damo_command_prints_no_traceback(sweep: Path, index: int) -> None:
    argv, message = _cases(sweep)[index]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "damo", *argv], capture_output=True, text=True, env=env,
                          cwd=sweep, timeout=120)
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and done.stdout == ""
