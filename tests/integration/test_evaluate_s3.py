"""Evaluate with benchmark data on a real object store (the stack's SeaweedFS) and MLflow tracking:
the same metrics as from the local folder, and the data is fetched once (a rerun needs no store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo import storage
from damo.config import DamoConfig, load_config
from damo.stack import StackEnv
from damo.steps.evaluate import EvaluatePaths, run

pytestmark = pytest.mark.integration


def _benchmark(folder: Path) -> Path:
    """A two-image tiny-world benchmark in its real layout."""
    (folder / "images").mkdir(parents=True)
    objects = {"red": ["red"], "blue": ["blue"], "circle": ["circles"], "square": ["squares"],
               "dog": ["dogs"]}
    (folder / "vocabulary.json").write_text(json.dumps({"objects": objects}))
    rows = [{"id": n, "image": f"images/{n}.png", "question": "What do you see?", "truth": truth}
            for n, truth in (("t1", ["red", "circle"]), ("t2", ["blue", "square"]))]
    (folder / "tiny_world.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_benchmark_data_from_s3_scores_like_local_and_is_fetched_once(
    stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _benchmark(tmp_path / "bench")
    bucket = stack_config.stack.bucket
    client = storage.s3_client()
    for f in sorted(local.rglob("*")):
        if f.is_file():
            client.put_object(Bucket=bucket, Key=f"eval-test/bench/{f.relative_to(local).as_posix()}",
                              Body=f.read_bytes())
    answers = tmp_path / "answers.jsonl"
    records = [{"id": "t1", "decoding": "sampled", "answer": "A red circle and a dog."},
               {"id": "t2", "decoding": "sampled", "answer": "A blue square."}]
    answers.write_text("".join(json.dumps(r) + "\n" for r in records))
    remote_cfg = load_config("tiny", [f"evaluate.data.tiny_world=s3://{bucket}/eval-test/bench",
                                      f"evaluate.data_cache={tmp_path / 'cache'}"])
    remote = run(remote_cfg, EvaluatePaths(out=tmp_path / "remote", answers=answers))
    local_result = run(load_config("tiny", [f"evaluate.data.tiny_world={local}"]),
                       EvaluatePaths(out=tmp_path / "local", answers=answers))
    assert remote["headline"] == local_result["headline"]
    assert remote["headline"]["tiny_world.chair_mention"] == pytest.approx(1 / 5)

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the store is gone: the cache serves
    again = run(remote_cfg, EvaluatePaths(out=tmp_path / "again", answers=answers))
    assert again["headline"] == remote["headline"]
