"""The local stack's bookkeeping without servers: secrets generated once and private, ports chosen and
kept, PIDs checked before any signal, process groups stopped and reaped, the tracking URI respected."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from damo import stack, stack_procs
from damo.config import DamoConfig, load_config


def _config(tmp_path: Path, *extra: str) -> DamoConfig:
    return load_config(None, [f"stack.state_dir={tmp_path}", "stack.s3_port=0", "stack.mlflow_port=0",
                              *extra])


def test_credentials_are_generated_once_and_private(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = stack.credentials(config.stack)
    assert stack.credentials(config.stack) == first
    assert (tmp_path / stack.CREDENTIALS_FILE).stat().st_mode & 0o777 == 0o600
    assert len(first["AWS_SECRET_ACCESS_KEY"]) >= 32
    assert first["AWS_SECRET_ACCESS_KEY"] != first["MLFLOW_TRACKING_PASSWORD"]
    os.chmod(tmp_path / stack.CREDENTIALS_FILE, 0o644)
    with pytest.raises(stack.StackError, match="readable by others"):
        stack.credentials(config.stack)


def test_ports_zero_are_chosen_free_then_kept_and_grpc_ports_follow_seaweedfs(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ports = stack._ports(config.stack, {"ports": {}})
    assert len(set(ports.values())) == len(ports)  # no two services share a port
    for name in stack.WEED_PAIRED_PORTS:
        assert ports[f"{name}_grpc"] == ports[name] + stack.WEED_GRPC_OFFSET
    assert stack._ports(config.stack, {"ports": ports}) == ports
    fixed = _config(tmp_path, "stack.s3_port=19999")
    assert stack._ports(fixed.stack, {"ports": ports})["s3"] == 19999


def test_the_server_commands_bind_loopback_and_never_open_s3(tmp_path: Path) -> None:
    config = _config(tmp_path, "stack.auth=true")
    ports = stack._ports(config.stack, {"ports": {}})
    weed = stack._weed_command(config.stack, ports, tmp_path)
    assert Path(weed[0]).name == "weed" and Path(weed[0]).is_file()
    assert "-ip.bind=127.0.0.1" in weed and f"-s3.config={tmp_path / 's3.json'}" in weed
    assert "-master.telemetry=false" in weed
    mlflow = stack._mlflow_command(config.stack, ports, tmp_path)
    assert mlflow[mlflow.index("--host") + 1] == "127.0.0.1" and mlflow[-2:] == ["--app-name", "basic-auth"]
    env = stack._server_env(config.stack, stack.credentials(config.stack), "http://127.0.0.1:1", tmp_path)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_stack_env_never_prints_secrets(tmp_path: Path) -> None:
    env = stack.StackEnv("http://127.0.0.1:1", "http://127.0.0.1:2", "damo",
                         {"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert "s3cr3t" not in repr(env) and "s3cr3t" not in str(env)


def test_a_configured_tracking_uri_means_no_local_stack(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert stack.use_local_stack_if_unset(_config(tmp_path)) is None
    assert not (tmp_path / stack.STATE_FILE).exists()


def test_stop_signals_only_the_recorded_process_group_and_reaps_it(tmp_path: Path) -> None:
    # A leader with a child in its group, like the MLflow CLI and its uvicorn worker.
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    record = stack_procs.start([sys.executable, "-c", script], os.environ, tmp_path / "x.log", tmp_path)
    other = stack_procs.start(["sleep", "60"], os.environ, tmp_path / "y.log", tmp_path)
    assert stack_procs.is_running(record)
    stale = dict(record, start_ticks=record["start_ticks"] + 1)  # the PID reused by another process
    assert stack_procs.stop(stale, 5.0) == "not running" and stack_procs.is_running(record)

    assert stack_procs.stop_all([record], 10.0) == ["stopped"]
    assert not Path(f"/proc/{record['pid']}").exists()  # gone and reaped, not a zombie
    assert stack_procs.is_running(other)
    assert stack_procs.stop(other, 0.0) == "killed"
    assert stack_procs.stop(other, 5.0) == "not running"


def test_up_refuses_to_point_a_running_stack_at_other_ports(tmp_path: Path) -> None:
    config = _config(tmp_path)
    running = stack_procs.start(["sleep", "60"], os.environ, tmp_path / "s.log", tmp_path)
    state = {"ports": stack._ports(config.stack, {"ports": {}}), "services": {"s3": running}}
    try:
        stack._check_same_ports(config.stack, state, state["ports"])  # same ports: fine
        other = _config(tmp_path, "stack.s3_port=19999")
        with pytest.raises(stack.StackError, match="s3 port 19999"):
            stack._check_same_ports(other.stack, state, stack._ports(other.stack, state))
    finally:
        stack_procs.stop(running, 0.0)


def test_the_state_folder_is_closed_to_other_users_and_the_store_has_its_own_keys(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    config = load_config(None, [f"stack.state_dir={folder}"])
    creds = stack.credentials(config.stack)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(creds[k] for k in ("WEED_JWT_KEY", "WEED_FILER_JWT_KEY", "WEED_ADMIN_PASSWORD"))
    weed = stack._weed_command(config.stack, stack._ports(config.stack, {"ports": {}}), folder)
    assert "-disableHttp" in weed and not any(creds["WEED_ADMIN_PASSWORD"] in arg for arg in weed)
