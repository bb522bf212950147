"""Step ``pull``: a registered model version (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``)
→ a local folder that transformers' ``from_pretrained`` loads, every file checked against the
sha256 recorded at registration (:func:`damo.registry.pull`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from damo import registry
from damo.config import DamoConfig
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker


@dataclass(frozen=True)
class PullPaths:
    model_uri: str
    out: Path  # replaced by the pulled folder once it is complete and verified
    force: bool = False  # replace a non-empty folder that is not an earlier pull


@dataclass(frozen=True, eq=False)
class PullResult(StepResult):
    """The version pulled; ``stats`` also holds name, source, files (verified) and aliases."""

    model_uri: str = ""
    version: str = ""


def run(config: DamoConfig, paths: PullPaths) -> PullResult:
    """Pull through :func:`damo.registry.pull`; no MLflow run of its own (a pull records nothing)."""
    out = Path(paths.out)

    def work(tracker: Tracker) -> PullResult:
        pulled = registry.pull(config, paths.model_uri, out, paths.force)
        return PullResult.from_dict({"step": "pull", **pulled})

    return run_step(config, "pull", out, work, track=False)
