"""Step ``register``: a trained HF model folder → an MLflow model version with its files in S3.

The work (upload, verification, version, tags, model card, aliases, gate) is in
:func:`damo.registry.register`; this step resolves the paths and writes its outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo import registry
from damo.config import DamoConfig, save_resolved


@dataclass(frozen=True)
class RegisterPaths:
    model: Path  # the HF folder, or the train step's output folder holding it as model/
    metrics: Path | None = None  # the evaluate step's metrics.json (gate + tags)
    data: Path | None = None  # the preference dataset trained on (its manifest checksum is tagged)
    out: Path | None = None  # where config.yaml, result.json and model_card.md go (optional)


def hf_folder(path: Path) -> Path:
    """``path`` itself when it holds config.json, else its ``model/`` subfolder (train's layout)."""
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise registry.RegistryError(f"{path}: neither it nor {path / 'model'} holds a HF model (config.json)")


def run(config: DamoConfig, paths: RegisterPaths) -> dict[str, Any]:
    """Register ``paths.model`` as a version of ``registry.model_name``; returns model_uri, name,
    version, aliases (and source, run_id, gate reason, file count, bytes)."""
    result = registry.register(config, hf_folder(Path(paths.model)), paths.metrics, paths.data)
    card = result.pop("model_card")
    summary = {"step": "register", **result}
    if paths.out is not None:
        out = Path(paths.out)
        save_resolved(config, out)
        (out / "model_card.md").write_text(card)
        (out / "result.json").write_text(json.dumps(summary, indent=2))
    return summary
