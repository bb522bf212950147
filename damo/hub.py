"""Hugging Face Hub ids (``org/name`` or ``org/name@revision``) → folders in the hub client's own cache.

Resolution goes through ``huggingface_hub.snapshot_download``, so the cache is the one the hub client
lays out (``models--org--name/{blobs,refs,snapshots/<commit>}``) and shared with transformers and
open_clip:

- the cache folder is ``hub.cache_dir`` when set (a cluster mounts a shared volume there), else the
  client's default, which honours ``HF_HUB_CACHE`` and ``HF_HOME``;
- the endpoint is ``hub.endpoint`` when set (a mirror), else ``HF_ENDPOINT``, else huggingface.co;
- the token is ``HF_TOKEN`` from the environment (on a cluster: a Kubernetes Secret mounted as that
  variable, ``hub.token_secret``); it is passed to the client and never logged or recorded;
- ``hub.offline`` or ``HF_HUB_OFFLINE=1`` reads the cache only (``local_files_only``): a revision
  that is not cached fails with the id named, nothing is fetched.

The resolved commit is the name of the snapshot folder (the hub client names it after the commit),
so a branch or tag pin (``@main``, ``@v1.0``) is recorded as the exact commit it pointed to.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import HubConfig
from damo.errors import DamoError

log = logging.getLogger(__name__)

TOKEN_ENV = "HF_TOKEN"
CLIP_PREFIX = "hf-hub:"  # open_clip's own prefix for hub-hosted CLIPs
# org/name[@revision]: the hub's repo-id characters; a revision is a branch, tag or commit.
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_FOLDER = re.compile(r"^models--(?P<org>[^/]+?)--(?P<name>[^/]+)$")


class HubError(DamoError, RuntimeError):
    """A Hub id is malformed, or its revision cannot be resolved (offline and not cached, gated...)."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class HubSnapshot:
    ref: HubRef
    path: Path  # <cache>/models--org--name/snapshots/<commit>
    commit: str

    def provenance(self) -> dict[str, str]:
        return {"hub_repo": self.ref.repo_id, "hub_revision": self.ref.revision or "main",
                "hub_commit": self.commit}


def parse_hub_id(text: str) -> HubRef | None:
    """``org/name[@revision]`` → a reference; anything else (paths, URIs) → None."""
    if text.startswith(("/", ".", "~")) or "://" in text or ":/" in text:
        return None
    match = HUB_ID.match(text)
    if match is None:
        return None
    return HubRef(match["repo"], match["revision"])


def is_offline(hub: HubConfig) -> bool:
    from huggingface_hub import is_offline_mode

    return hub.offline or bool(is_offline_mode())


def download(ref: HubRef, hub: HubConfig, **patterns: Any) -> HubSnapshot:
    """The snapshot of ``ref`` in the hub cache (fetched first unless offline); ``patterns`` are
    ``allow_patterns``/``ignore_patterns`` of ``snapshot_download``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    offline = is_offline(hub)
    try:
        path = snapshot_download(ref.repo_id, revision=ref.revision, cache_dir=hub.cache_dir,
                                 token=os.environ.get(TOKEN_ENV) or None, local_files_only=offline,
                                 endpoint=hub.endpoint, **patterns)
    except LocalEntryNotFoundError as err:
        where = hub.cache_dir or "the default hub cache (HF_HUB_CACHE / HF_HOME)"
        mode = "offline: " if offline else ""
        raise HubError(f"hub model {ref}: {mode}revision not found in {where}: {err}") from err
    except (HfHubHTTPError, HFValidationError, OSError, ValueError) as err:
        raise HubError(f"hub model {ref}: {err}") from err
    snapshot = Path(str(path))
    commit = snapshot.name
    if not COMMIT.match(commit):
        raise HubError(f"hub model {ref}: snapshot folder {snapshot} is not named after a commit")
    log.info("hub model %s → commit %s (%s)", ref, commit, snapshot)
    return HubSnapshot(ref, snapshot, commit)


def snapshot_provenance(path: Path) -> dict[str, str]:
    """``hub_repo``/``hub_commit`` of a folder at or under a hub-cache snapshot; empty when it is not
    one (a plain folder, an s3:// or models:/ download)."""
    parts = Path(os.path.abspath(path)).parts
    for i in range(len(parts) - 2, 0, -1):
        repo = REPO_FOLDER.match(parts[i - 1]) if parts[i] == "snapshots" else None
        if repo and COMMIT.match(parts[i + 1]):
            return {"hub_repo": f"{repo['org']}/{repo['name']}", "hub_commit": parts[i + 1]}
    return {}
