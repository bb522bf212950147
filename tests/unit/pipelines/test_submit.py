"""`damo submit` / `damo schedule` against a stub Kubeflow Pipelines API on 127.0.0.1: what the
requests carry (pipeline, parameters, service account, schedule) and what they never carry (tokens)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from damo.cli import main
from damo.container.reference import record
from pipelines.golden import EXAMPLE_IMAGE

TOKEN = "kfp-token-must-stay-in-headers"
IMAGE = ["--set", f"pipeline.image={EXAMPLE_IMAGE}"]


@dataclass
class Stub:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def bodies(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["method"] == method and r["path"].startswith(path)]


def _answer(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path.startswith("/apis/v2beta1/experiments"):
        if method == "GET":
            return {"experiments": []}  # none yet: the client creates it
        return {"experiment_id": "exp-1", "display_name": body.get("display_name")}
    if path.startswith("/apis/v2beta1/runs"):
        return {"run_id": "run-1", "display_name": body.get("display_name"), "experiment_id": "exp-1"}
    if path.startswith("/apis/v2beta1/recurringruns"):
        return {"recurring_run_id": "rr-1", "display_name": body.get("display_name")}
    return {}


@pytest.fixture
def stub() -> Iterator[Stub]:
    recorded: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            recorded.append({"method": self.command, "path": self.path, "body": body,
                             "authorization": self.headers.get("Authorization")})
            payload = json.dumps(_answer(self.command, self.path, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Stub(f"http://127.0.0.1:{server.server_port}", recorded)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def json_line(out: str) -> dict[str, Any]:
    """stdout holds exactly one line: the verb's JSON result."""
    (line,) = out.strip().splitlines()
    return json.loads(line)


def test_submit_sends_the_compiled_pipeline_with_run_parameters(
        stub: Stub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    code = main(["submit", "--config", "llava15_7b", "--host", stub.url, "--namespace", "team-a", *IMAGE,
                 "--param", "source=s3://data/rlaif-v", "--param", "beta=0.2", "--run-name", "r1"])
    assert code == 0
    assert json_line(capsys.readouterr().out) == {"run_id": "run-1", "host": stub.url,
                                                       "pipeline": "damo-dama"}
    (experiment,) = stub.bodies("POST", "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "damo" and experiment["namespace"] == "team-a"
    (run,) = stub.bodies("POST", "/apis/v2beta1/runs")
    assert run["display_name"] == "r1" and run["experiment_id"] == "exp-1"
    assert run["service_account"] == "damo-pipeline"
    assert run["runtime_config"]["parameters"] == {"source": "s3://data/rlaif-v", "beta": 0.2}
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "damo-dama"
    assert run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    executors = run["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {EXAMPLE_IMAGE}
    assert {r["authorization"] for r in stub.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in json.dumps([r["body"] for r in stub.requests])


def test_schedule_creates_a_recurring_run(stub: Stub, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KFP_TOKEN", raising=False)
    code = main(["schedule", "--config", "llava15_7b", "--host", stub.url, "--namespace", "team-a", *IMAGE,
                 "--cron", "0 0 3 * * 1", "--param", "source=s3://data/rlaif-v"])
    assert code == 0
    assert json_line(capsys.readouterr().out)["recurring_run_id"] == "rr-1"
    (recurring,) = stub.bodies("POST", "/apis/v2beta1/recurringruns")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert recurring["no_catchup"] is True and int(recurring["max_concurrency"]) == 1
    assert recurring["mode"] == "ENABLE" and recurring["experiment_id"] == "exp-1"
    assert recurring["display_name"] == "damo-dama-scheduled"
    assert recurring["service_account"] == "damo-pipeline"
    assert recurring["runtime_config"]["parameters"] == {"source": "s3://data/rlaif-v"}
    assert {r["authorization"] for r in stub.requests} == {None}


def test_schedule_refuses_a_five_field_cron_before_calling_the_host(
        stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schedule", "--config", "llava15_7b", "--host", stub.url, "--namespace", "t", *IMAGE,
                 "--cron", "0 3 * * 1"])
    assert code == 2
    assert "KFP needs 6 fields" in capsys.readouterr().err
    assert stub.requests == []


def test_compile_writes_the_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.yaml"
    assert main(["compile", "--config", "tiny", "--out", str(out), *IMAGE]) == 0
    line = json_line(capsys.readouterr().out)
    assert line["pipeline"] == str(out) and out.is_file() and len(line["sha256"]) == 64
    assert line["image"] == EXAMPLE_IMAGE and EXAMPLE_IMAGE in out.read_text()


def test_compile_names_the_image_that_damo_image_build_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = "127.0.0.1:5000/damo@sha256:" + "ab" * 32
    record(tmp_path / "image.json", built)
    out = tmp_path / "p.yaml"
    args = ["compile", "--config", "tiny", "--out", str(out),
            "--set", f"pipeline.image_record={tmp_path}/image.json"]
    assert main(args) == 0
    assert json_line(capsys.readouterr().out)["image"] == built and built in out.read_text()


@pytest.mark.parametrize("image", ["127.0.0.1:5000/damo:latest", "damo-local/damo:0123abcd",
                                   "ghcr.io/x/damo@sha256:1234"])
def test_compile_refuses_an_image_not_pinned_by_digest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], image: str) -> None:
    out = tmp_path / "p.yaml"
    args = ["compile", "--config", "tiny", "--out", str(out), "--set", f"pipeline.image={image}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"pipeline.image {image!r} is not pinned by digest" in err and "--allow-unpinned-image" in err
    assert not out.exists()
    assert main([*args, "--allow-unpinned-image"]) == 0  # development: lifted by the flag
    assert image in out.read_text()


def test_compile_without_any_image_says_how_to_get_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compile", "--config", "tiny", "--out", str(tmp_path / "p.yaml"),
            "--set", f"pipeline.image_record={tmp_path}/none.json"]
    assert main(args) == 2
    assert "no pipeline image" in capsys.readouterr().err
