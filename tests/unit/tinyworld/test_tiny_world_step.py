"""``damo tiny-world --out DIR`` runs the step: world + resolved config + result.json + one JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo.cli import main
from damo.config import load_config

QUICK = ["tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=16",
         "tiny_world.eval_images=2", "tiny_world.selection_images=2"]


def test_cli_builds_the_world_through_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "world"
    args = ["tiny-world", "--config", "tiny", "--out", str(out)]
    for override in QUICK:
        args += ["--set", override]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["step"] == "tiny_world" and line["out"] == str(out)
    assert json.loads((out / "result.json").read_text()) == line
    assert load_config(str(out / "config.yaml")) == load_config("tiny", QUICK)
    for name in ("data", "policy", "clip", "benchmark", "report.json", "world.json"):
        assert (out / name).exists(), name


def test_cli_refuses_a_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "something").write_text("x")
    assert main(["tiny-world", "--out", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err
