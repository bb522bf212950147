"""`damo stack up|down|status` with real processes: loopback only, S3 never open, secrets kept private,
`up` idempotent, `down` stopping exactly what `up` started; MLflow basic auth end to end."""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from damo import stack as damo_stack
from damo.cli import main
from damo.config import DamoConfig
from damo.tracking import client as registry_client

pytestmark = pytest.mark.integration


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rindex(")") + 2:].split()[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by ``pids``."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                hex_addr, hex_port = fields[1].split(":")
                raw = bytes.fromhex(hex_addr)
                addr = socket.inet_ntop(socket.AF_INET if width == 4 else socket.AF_INET6,
                                        b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
                found.add((addr, int(hex_port, 16)))
    return found


def _state(config: DamoConfig) -> dict:
    return json.loads((damo_stack.state_dir(config.stack) / damo_stack.STATE_FILE).read_text())


def test_stack_listens_on_loopback_only_and_its_s3_is_never_open(
        stack: damo_stack.StackEnv, stack_config: DamoConfig) -> None:
    state = _state(stack_config)
    pids = [p for record in state["services"].values() for p in _group_pids(record["pid"])]
    listening = _listening(pids)
    assert listening and {addr for addr, _ in listening} == {"127.0.0.1"}
    assert {state["ports"]["s3"], state["ports"]["mlflow"]} <= {port for _, port in listening}

    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{stack.s3_endpoint}/{stack.bucket}/")
    assert anonymous.value.code == 403
    wrong = [(stack.env["AWS_ACCESS_KEY_ID"], "wrong-secret-0123456789", "SignatureDoesNotMatch"),
             ("unknown-key", stack.env["AWS_SECRET_ACCESS_KEY"], "InvalidAccessKeyId")]
    for key, secret, code in wrong:
        client = boto3.session.Session().client("s3", endpoint_url=stack.s3_endpoint, region_name="us-east-1",
                                                aws_access_key_id=key, aws_secret_access_key=secret)
        with pytest.raises(ClientError) as rejected:
            client.put_object(Bucket=stack.bucket, Key="intruder", Body=b"x")
        assert rejected.value.response["Error"]["Code"] == code

    folder = damo_stack.state_dir(stack_config.stack)
    for private in ("credentials.env", "client.env", "s3.json", "auth.ini"):
        assert (folder / private).stat().st_mode & 0o777 == 0o600, private
    assert stack.env["AWS_SECRET_ACCESS_KEY"] not in (folder / damo_stack.STATE_FILE).read_text()
    assert stack.env["AWS_SECRET_ACCESS_KEY"] not in repr(stack)


def test_up_is_idempotent_and_status_reports_both_services(stack: damo_stack.StackEnv,
                                                           stack_config: DamoConfig) -> None:
    before = _state(stack_config)["services"]
    again = damo_stack.ensure_up(stack_config)
    assert again.tracking_uri == stack.tracking_uri and _state(stack_config)["services"] == before
    status = damo_stack.status(stack_config)
    assert status["up"] and status["tracking_uri"] == stack.tracking_uri
    assert all(s["running"] and s["answering"] for s in status["services"].values())


def _secrets(creds: dict[str, str]) -> list[str]:
    user, password = creds["MLFLOW_TRACKING_USERNAME"], creds["MLFLOW_TRACKING_PASSWORD"]
    return [creds["AWS_SECRET_ACCESS_KEY"], password, creds["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            base64.b64encode(f"{user}:{password}".encode()).decode()]


def _everything_logged(uri: str, experiment: str, model: str, tmp: Path) -> str:
    """Params, tags and artifacts of every run, and the tags and card of every model version."""
    import mlflow.artifacts

    client = registry_client(uri)
    texts = []
    for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id]):
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(run.data.metrics)]
        dest = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                        dst_path=str(tmp / run.info.run_id)))
        texts += [p.read_text(errors="replace") for p in dest.rglob("*") if p.is_file()]
    for mv in client.search_model_versions(f"name='{model}'"):
        texts += [json.dumps(mv.tags), mv.description or "", mv.source]
    return "\n".join(texts)


def test_basic_auth_stack_from_the_cli_and_no_secret_anywhere(
        stack: damo_stack.StackEnv, stack_config: DamoConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    overrides = [f"stack.state_dir={tmp_path / 'auth-stack'}", "stack.s3_port=0", "stack.mlflow_port=0",
                 "stack.auth=true", "tracking.experiment=auth"]
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["stack", "up", "--config", "tiny", *sets]) == 0
    up = json.loads(capsys.readouterr().out)
    folder = tmp_path / "auth-stack"
    creds = damo_stack.credentials(damo_stack.StackConfig(state_dir=str(folder)))
    started = json.loads((folder / damo_stack.STATE_FILE).read_text())["services"]
    try:
        assert urllib.request.urlopen(up["tracking_uri"] + "/health").status == 200  # stays open
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(up["tracking_uri"] + "/api/2.0/mlflow/experiments/search?max_results=1")
        assert anonymous.value.code == 401

        for key, value in damo_stack._read_env_file(Path(up["client_env"])).items():
            monkeypatch.setenv(key, value)
        model = tmp_path / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        (model / "model.safetensors").write_bytes(b"\0" * 2048)
        (tmp_path / "metrics.json").write_text(json.dumps({"tiny_world": {"accuracy": 0.7}}))
        assert main(["register", "--config", "tiny", *sets, "--model", str(model), "--name", "auth-model",
                     "--metrics", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "reg")]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["version"] == "1"
        assert main(["pull", "models:/auth-model@candidate", "--out", str(tmp_path / "pulled"), *sets]) == 0
        assert (tmp_path / "pulled" / "model.safetensors").stat().st_size == 2048

        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
        assert main(["pull", "models:/auth-model@candidate", "--out", str(tmp_path / "denied"), *sets]) != 0
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", creds["MLFLOW_TRACKING_PASSWORD"])

        printed = capsys.readouterr()
        haystack = "\n".join([
            _everything_logged(up["tracking_uri"], "auth", "auth-model", tmp_path / "artifacts"),
            caplog.text, printed.out, printed.err, json.dumps(up),
            *(p.read_text(errors="replace") for d in ("reg", "pulled") for p in (tmp_path / d).glob("*.*")
              if p.suffix in (".json", ".yaml", ".md")),
            *(p.read_text(errors="replace") for p in folder.glob("*.log")),
            (folder / damo_stack.STATE_FILE).read_text(),
        ])
        assert "auth-model" in haystack and "tiny_world.accuracy" in haystack  # the scan saw real content
        for secret in _secrets(creds):
            assert secret not in haystack
    finally:
        assert main(["stack", "down", *sets]) == 0
    groups = [record["pid"] for record in started.values()]
    left = {pid: Path(f"/proc/{pid}/stat").read_text() for pgid in groups for pid in _group_pids(pgid)}
    assert not left, f"down left processes of the auth stack: {left}"
    assert main(["stack", "status", *sets]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["up"] is False
    assert damo_stack.status(stack_config)["up"], "down of one stack must not touch another"
