"""With tracking on, stdout is the one JSON summary line; MLflow's "View run" line goes to stderr
(issue 15, finding 9). Run through the real `damo` command, as a script reading stdout would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from damo.stack import StackEnv

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _world(tmp_path: Path) -> Path:
    folder = tmp_path / "world" / "benchmark"
    folder.mkdir(parents=True)
    (folder / "vocabulary.json").write_text(json.dumps({"objects": {"red": ["red"], "circle": ["circles"]}}))
    (folder / "tiny_world.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "image": f"images/t{i}.png", "question": "What?",
                    "truth": ["red", "circle"]})
        + "\n" for i in range(2)))
    return folder


def test_stdout_is_one_json_line_with_tracking_on(stack_environ: StackEnv, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    records = [{"id": f"t{i}", "answer": "a red circle"} for i in range(2)]
    answers.write_text("".join(json.dumps(r) + "\n" for r in records))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "damo", "evaluate", "--config", "tiny", "--answers", str(answers),
         "--out", str(tmp_path / "eval"), "--set", f"evaluate.data.tiny_world={_world(tmp_path)}",
         "--set", "tracking.experiment=stdout-contract"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert json.loads(lines[0])["headline"]["tiny_world.chair_response"] == 0.0
    assert "View run" in done.stderr  # MLflow did print it: to stderr
