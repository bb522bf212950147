"""A built world cached per machine: ``<root>/<key>``, keyed by config, seed, sources and versions.

Safe when several processes race (two pytest runs, a pipeline and a test): each builds into its own
temporary folder beside the cache entry and renames it into place; the loser of the rename drops its
copy and uses the winner's. A cache entry therefore only ever exists complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from damo.config import DamoConfig
from damo.tinyworld.pinned import build

log = logging.getLogger(__name__)
# Libraries whose version changes the built bytes (initialisation, serialisation, image codecs).
KEYED_PACKAGES = ("torch", "transformers", "open_clip_torch", "tokenizers", "pillow", "pyarrow")


def world_key(config: DamoConfig) -> str:
    """sha256 over what determines the world: its config section, seed, code and library versions."""
    h = hashlib.sha256()
    h.update(json.dumps({"seed": config.seed, "tiny_world": config.tiny_world.model_dump(mode="json")},
                        sort_keys=True).encode())
    package = Path(__file__).resolve().parent
    for path in [*sorted(package.glob("*.py")), package.parent / "data" / "dataset.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for name in KEYED_PACKAGES:
        h.update(f"{name}={version(name)}".encode())
    return h.hexdigest()


def cached_world(config: DamoConfig, root: str | Path) -> Path:
    """The folder of the world ``config`` describes under ``root``, built first if absent."""
    root = Path(root)
    final = root / world_key(config)[:20]
    if (final / "world.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        build(config, tmp)
        os.rename(tmp, final)
    except OSError:
        if not (final / "world.json").is_file():
            raise  # not a lost race: a real failure
        log.info("another process cached %s first; using it", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
