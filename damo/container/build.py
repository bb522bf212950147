"""``damo image build``: the pipeline image from this checkout, with the local Docker engine.

The build context is assembled in a temporary folder from exactly what goes into the image (the
Dockerfile, the package sources, presets and an optional CA bundle), and the local image is tagged
with a hash of that context and the build arguments, so an unchanged tree is not rebuilt. With a
registry the image is pushed and its registry digest gives the pinned reference
(``REGISTRY/damo@sha256:…``), recorded in ``pipeline.image_record`` for ``damo compile`` and
``damo run --runner docker``. Docker's legacy builder is used unless ``DOCKER_BUILDKIT`` is set:
BuildKit needs the buildx plugin, which Debian's docker.io lacks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.container.reference import record
from damo.errors import DamoError

# What the image is built from (Dockerfile's COPY lines), relative to the checkout.
SOURCES = ("Dockerfile", "pyproject.toml", "README.md", "damo", "components", "pipelines", "configs")
NLTK_DATA = ".cache/nltk_data"  # scripts/install_nltk_data.sh's default destination (DAMO_NLTK_DATA)
WORDNET_SHA256 = "scripts/wordnet-3.0.sha256"
NLTK_CONTEXT = "nltk_data"  # the folder of the build context the Dockerfile copies
CA_FILE = "build-ca.crt"  # the Dockerfile copies it; empty when no --ca-bundle is given
LOCAL_REPOSITORY = "damo-local/damo"
TAG_HEX = 16  # hex digits of the context hash in the local tag
TAIL_LINES = 5  # of a failed command's output, kept for its error
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache")


class ImageBuildError(DamoError, RuntimeError):
    """The Docker engine refused a build, tag, push or inspect; the message names the command."""


@dataclass(frozen=True)
class BuildOptions:
    source: Path  # the checkout holding the Dockerfile
    record: Path  # where the resulting reference is written
    base: str | None = None  # the Dockerfile's BASE build argument; None → its pinned default
    ca_bundle: Path | None = None  # trusted by pip during the build
    push: str | None = None  # registry (host[:port][/path]) to push to; None → local only
    name: str = "damo"  # repository name under the registry


def _copy_nltk_data(source: Path, dest: Path) -> None:
    """The checkout's verified NLTK data (WordNet 3.0, what the tests use) and its checksums →
    ``dest/nltk_data`` (the image checks the files against them again)."""
    data = Path(os.environ.get("DAMO_NLTK_DATA") or source / NLTK_DATA)
    if not (data / "corpora" / "wordnet" / "lexnames").is_file():
        raise ImageBuildError(f"NLTK data missing in {data}: run `bash scripts/install_nltk_data.sh` first "
                              "(scripts/install.sh does)")
    shutil.copytree(data, dest / NLTK_CONTEXT, ignore=_IGNORED)
    shutil.copy2(source / WORDNET_SHA256, dest / NLTK_CONTEXT / Path(WORDNET_SHA256).name)


def assemble_context(opts: BuildOptions, dest: Path) -> None:
    """Copy what goes into the image into ``dest``; a missing source or CA bundle is an error."""
    for rel in SOURCES:
        src = opts.source / rel
        if not src.exists():
            raise ImageBuildError(f"{src} is missing: run `damo image build` from a damo checkout")
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=_IGNORED)
        else:
            shutil.copy2(src, dest / rel)
    _copy_nltk_data(opts.source, dest)
    if opts.ca_bundle is not None and not opts.ca_bundle.is_file():
        raise ImageBuildError(f"--ca-bundle {opts.ca_bundle}: no such file")
    (dest / CA_FILE).write_bytes(opts.ca_bundle.read_bytes() if opts.ca_bundle else b"")


def context_hash(context: Path, build_args: dict[str, str]) -> str:
    """sha256 over every file's path and bytes (sorted) and the build arguments."""
    digest = hashlib.sha256(json.dumps(build_args, sort_keys=True).encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def docker(*args: str, capture: bool = True) -> str:
    """Run the docker CLI and return its stdout; with ``capture=False`` its progress is copied to
    stderr line by line instead (stdout is the verb's JSON line)."""
    if shutil.which("docker") is None:
        raise ImageBuildError("the docker CLI is not on PATH (install Docker; README: Containers)")
    env = {**os.environ, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0")}
    with subprocess.Popen(["docker", *args], env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE if capture else subprocess.STDOUT) as proc:
        out, err = proc.communicate() if capture else (_copy_to_stderr(proc), "")
    if proc.returncode:
        detail = err.strip().splitlines()[-1:] if capture else out.strip().splitlines()[-1:]
        command = " ".join(args[:2])
        raise ImageBuildError(f"`docker {command}` failed (exit {proc.returncode}): {' '.join(detail)}")
    return out.strip() if capture else ""


def _copy_to_stderr(proc: subprocess.Popen[str]) -> str:
    """Stream the process's output to stderr; return its last lines (for the error message)."""
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        sys.stderr.write(line)
        tail = [*tail[-(TAIL_LINES - 1):], line]
    proc.wait()
    return "".join(tail)


def image_exists(reference: str) -> bool:
    try:
        docker("image", "inspect", "--format", "{{.Id}}", reference)
    except ImageBuildError:
        return False
    return True


def push(local: str, repository: str, tag: str) -> str:
    """Tag ``local`` as ``repository:tag``, push it, return ``repository@sha256:…`` from the registry."""
    docker("tag", local, f"{repository}:{tag}")
    docker("push", f"{repository}:{tag}", capture=False)
    digests: list[str] = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", local))
    pinned = [d for d in digests if d.startswith(f"{repository}@sha256:")]
    if not pinned:
        raise ImageBuildError(f"pushed {repository}:{tag} but the engine reports no digest for it: {digests}")
    return pinned[0]


def build(opts: BuildOptions) -> dict[str, Any]:
    """Build (unless cached), push when asked, record and return the reference and the figures."""
    build_args = {"BASE": opts.base} if opts.base else {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="damo-image-") as tmp:
        context = Path(tmp)
        assemble_context(opts, context)
        content = context_hash(context, build_args)
        local = f"{LOCAL_REPOSITORY}:{content[:TAG_HEX]}"
        cached = image_exists(local)
        if not cached:
            flags = [f"--build-arg={k}={v}" for k, v in build_args.items()]
            docker("build", "--network=host", "--tag", local, *flags, str(context), capture=False)
    built_s = time.monotonic() - start
    reference = push(local, f"{opts.push.rstrip('/')}/{opts.name}", content[:TAG_HEX]) if opts.push else local
    record(opts.record, reference, local=local, context_sha256=content, base=opts.base or "default")
    return {"image": reference, "local": local, "cached": cached, "build_seconds": round(built_s, 1),
            "size_bytes": int(docker("image", "inspect", "--format", "{{.Size}}", local)),
            "record": str(opts.record)}
