"""Step ``register``: a trained HF model folder → an MLflow model version with its files in S3.

The work (upload, verification, version, tags, model card, aliases, gate) is in
:func:`damo.registry.register`; this step resolves the paths and writes its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from damo import registry
from damo.config import DamoConfig
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker


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


@dataclass(frozen=True, eq=False)
class RegisterResult(StepResult):
    """The model version created; ``stats`` also holds source, run_id, gate, files, total_bytes."""

    model_uri: str = ""
    name: str = ""
    version: str = ""
    aliases: list[str] = field(default_factory=list)


def run(config: DamoConfig, paths: RegisterPaths) -> RegisterResult:
    """Register ``paths.model`` as a version of ``registry.model_name``; returns model_uri, name,
    version, aliases (and source, run_id, gate reason, file count, bytes)."""
    model_dir = hf_folder(Path(paths.model))
    # Every input (name, folder, metrics, dataset, tracking URI) before any MLflow run is opened.
    registry.check_inputs(config, model_dir, paths.metrics, paths.data)
    registry.require_uri(config)
    out = Path(paths.out) if paths.out is not None else None

    def work(tracker: Tracker) -> RegisterResult:
        result = registry.register(config, tracker, model_dir, paths.metrics, paths.data)
        card = result.pop("model_card")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "model_card.md").write_text(card)
        return RegisterResult.from_dict({"step": "register", **result})

    return run_step(config, "register", out, work)
