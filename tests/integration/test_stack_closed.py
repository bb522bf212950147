"""The local stack is closed to a hostile neighbour (issue 15, findings 1 and 10).

A local user without the stack's credentials scans every port that the stack's processes listen on:
HTTP requests that would list, read or write the bucket get nothing (no listing, no object bytes, no
write lands), and every gRPC port demands the stack's client certificate. The state folder is private
and a non-loopback host without MLflow auth is refused before anything starts.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import psutil
import pytest

from damo import stack as damo_stack
from damo import stack_security
from damo.config import load_config

pytestmark = pytest.mark.integration

SECRET_BODY = b"model weights nobody else may read 7f3a"
SECRET_KEY = "mlflow/secret-object.bin"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _stack_ports(state: dict) -> set[int]:
    pids = set()
    for record in state["services"].values():
        root = psutil.Process(record["pid"])
        pids |= {root.pid, *(c.pid for c in root.children(recursive=True))}
    return {c.laddr.port for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids}


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of an unauthenticated request; (0, b"") when the port does not speak HTTP."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _tls_read(port: int, context: ssl.SSLContext) -> bytes | None:
    """Bytes a gRPC server sends back after the HTTP/2 preface over TLS; None if it hangs up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # + empty SETTINGS
            return tls.recv(64) or None
    except (ssl.SSLError, OSError):
        return None


def _client_context(tls_dir: Path, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if with_certificate:
        context.load_cert_chain(tls_dir / "node.crt", tls_dir / "node.key")
    return context


@pytest.fixture(scope="module")
def closed_stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("closed") / "stack"
    config = load_config("tiny", [f"stack.state_dir={folder}", "stack.s3_port=0", "stack.mlflow_port=0"])
    assert config.stack.auth  # the default stack is the one scanned
    env = damo_stack.up(config)
    try:
        yield config, env
    finally:
        damo_stack.down(config)


def test_every_port_of_the_stack_refuses_a_neighbour_without_credentials(closed_stack) -> None:  # type: ignore[no-untyped-def]
    config, env = closed_stack
    s3 = boto3.client("s3", endpoint_url=env.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id=env.env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env.env["AWS_SECRET_ACCESS_KEY"])
    s3.put_object(Bucket=env.bucket, Key=SECRET_KEY, Body=SECRET_BODY)
    state = damo_stack._load_state(config.stack)
    ports = _stack_ports(state)
    grpc_ports = {state["ports"][n] for n in state["ports"] if n.endswith("_grpc")}
    assert {state["ports"]["s3"], state["ports"]["mlflow"], state["ports"]["filer"]} <= ports

    bucket = f"/buckets/{env.bucket}"
    reads = ["/", f"{bucket}/", f"{bucket}/{SECRET_KEY}", f"/{env.bucket}/{SECRET_KEY}", "/dir/assign",
             "/dir/lookup?volumeId=1", "/vol/status", "/1,01",
             "/api/2.0/mlflow/experiments/search?max_results=5",
             f"/api/2.0/mlflow-artifacts/artifacts/{SECRET_KEY.removeprefix('mlflow/')}"]
    writes = [("PUT", f"{bucket}/planted.txt"), ("POST", f"{bucket}/planted.txt"),
              ("PUT", f"/{env.bucket}/planted.txt"),
              ("POST", "/submit"), ("PUT", "/api/2.0/mlflow-artifacts/artifacts/planted.txt")]
    for port in sorted(ports - grpc_ports):
        base = f"http://127.0.0.1:{port}"
        for path in reads:
            status, body = _http("GET", base + path)
            assert SECRET_BODY not in body, (port, path)
            listing = "secret-object" not in path  # an error may echo the key asked for; a listing may not
            assert not listing or b"secret-object" not in body, (port, path, body[:200])
            assert "/dir/" not in path or status not in range(200, 300), (port, path, body[:200])
        for method, path in writes:
            status, body = _http(method, base + path, b"planted by a neighbour")
            assert status not in range(200, 300), (port, method, path, status, body[:200])

    listed = s3.list_objects_v2(Bucket=env.bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [SECRET_KEY]  # nothing planted, nothing lost
    assert s3.get_object(Bucket=env.bucket, Key=SECRET_KEY)["Body"].read() == SECRET_BODY

    tls_dir = damo_stack.state_dir(config.stack) / stack_security.TLS_DIR
    for port in sorted(grpc_ports & ports):
        assert _tls_read(port, _client_context(tls_dir, with_certificate=True)), port  # the probe works
        assert _tls_read(port, _client_context(tls_dir, with_certificate=False)) is None, port
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(HTTP2_PREFACE)
            assert not plain.recv(64).startswith(b"\x00"), port  # no plaintext HTTP/2 frames back


def test_the_stack_folder_and_everything_in_it_is_private(closed_stack) -> None:  # type: ignore[no-untyped-def]
    config, _ = closed_stack
    folder = damo_stack.state_dir(config.stack)
    assert folder.stat().st_mode & 0o777 == 0o700  # no other user can even look inside
    # SeaweedFS sets its volume-info files (.vif: volume version and size, no object data) 0644 itself.
    opened = [str(p) for p in [folder, *folder.rglob("*")]
              if not p.is_symlink() and not p.is_socket() and p.suffix != ".vif" and p.stat().st_mode & 0o077]
    assert not opened, f"open to other users: {opened}"
    assert any(p.suffix in (".dat", ".idx") for p in folder.rglob("*")), "no volume file was checked"


def test_a_non_loopback_host_without_mlflow_auth_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = load_config("tiny", [f"stack.state_dir={tmp_path / 'st'}", "stack.host=0.0.0.0",
                                  "stack.auth=false"])
    with pytest.raises(damo_stack.StackError, match=r"stack\.host=0\.0\.0\.0 .*stack\.auth=true"):
        damo_stack.up(config)
    assert not (tmp_path / "st").exists()
