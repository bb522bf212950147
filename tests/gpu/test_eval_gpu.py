"""Evaluation on the accelerator: the tiny LLaVA generates in bf16 there, batched and beam-searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo.config import DecodingConfig, load_config
from damo.device import choose_device
from damo.eval.generation import HFResponder
from damo.eval.items import EvalItem
from damo.steps.evaluate import EvaluatePaths, run

pytestmark = pytest.mark.gpu


def test_responder_runs_on_the_chosen_device_in_bf16(tiny_world_quick: Path) -> None:
    bench = tiny_world_quick / "benchmark"
    rows = [json.loads(line) for line in (bench / "tiny_world.jsonl").read_text().splitlines()][:4]
    items = [EvalItem(r["id"], r["question"], bench / r["image"]) for r in rows]
    responder = HFResponder(tiny_world_quick / "policy", 6, seed=0, precision="bf16")
    assert next(responder.model.parameters()).device.type == choose_device().type
    for decoding in (DecodingConfig(name="beam3", num_beams=3), DecodingConfig(name="s", do_sample=True)):
        answers = responder(items, decoding)
        assert len(answers) == len(items) and all(isinstance(a, str) for a in answers)


def test_evaluate_step_on_the_accelerator(tiny_world_quick: Path, tmp_path: Path) -> None:
    config = load_config("tiny", [f"evaluate.data.tiny_world={tiny_world_quick / 'benchmark'}",
                                  "evaluate.precision=bf16"])
    result = run(config, EvaluatePaths(out=tmp_path, model=str(tiny_world_quick / "policy")))
    metrics = json.loads(Path(result["metrics"]).read_text())
    n_items = len((tiny_world_quick / "benchmark" / "tiny_world.jsonl").read_text().splitlines())
    assert metrics["tiny_world"]["responses"] == metrics["tiny_world_greedy"]["responses"] == n_items
