"""Lay a folder into a Hugging Face hub cache exactly as ``huggingface_hub`` lays out what it downloads.

``<cache>/models--<org>--<name>/`` holds ``blobs/<etag>`` (the file bytes, named by the git blob sha1 for
regular files and by the sha256 for LFS files such as weights), ``snapshots/<commit>/<path>`` (relative
symlinks to the blobs) and ``refs/<branch or tag>`` (a file holding the commit). The tests then read it
through the real client (``snapshot_download`` with ``local_files_only`` / ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin", ".pt")


def etag(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix in LFS_SUFFIXES:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def save_in_hub_cache(folder: Path, cache: Path, repo_id: str, *, refs: tuple[str, ...] = ("main",),
                      salt: str = "") -> str:
    """Copy ``folder``'s files into ``cache`` as snapshot of ``repo_id``; returns the commit."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    tags = {p.relative_to(folder).as_posix(): etag(p) for p in files}
    commit = hashlib.sha1((salt + repr(sorted(tags.items()))).encode()).hexdigest()
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(folder).as_posix()
        blob = repo / "blobs" / tags[rel]
        if not blob.exists():
            blob.write_bytes(path.read_bytes())
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        ref_file = repo / "refs" / ref
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        ref_file.write_text(commit)
    return commit
