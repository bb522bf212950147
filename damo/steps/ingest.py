"""Step ``ingest``: raw preference data (local or ``s3://``) → preference dataset + quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from damo.config import DamoConfig
from damo.data.dataset import MANIFEST
from damo.ingest import ingest
from damo.ingest.quarantine import QUARANTINE
from damo.ingest.records import IngestError
from damo.ingest.source import open_source
from damo.skeleton import StepResult, run_step
from damo.tracking import Tracker

COUNTS = ("input_rows", "kept", "quarantined", "rows_per_s")  # the report's figures logged as metrics


@dataclass(frozen=True)
class IngestPaths:
    source: str  # a local file/folder or s3://bucket/prefix
    out: Path  # the preference dataset folder to create (must not hold a dataset yet)


@dataclass(frozen=True, eq=False)
class IngestResult(StepResult):
    quarantine: str = ""


def run(config: DamoConfig, paths: IngestPaths) -> IngestResult:
    """Ingest ``paths.source`` into ``paths.out``; returns the ingest report (counts by reason)."""
    out = Path(paths.out)
    if (out / MANIFEST).exists():  # checked before anything is written: its config.yaml stays as it was
        raise IngestError(f"{out} already holds a dataset ({MANIFEST}); ingest into a new or empty folder")
    open_source(paths.source)  # a missing source, or a link out of it or a FIFO in it, fails before writing

    def work(tracker: Tracker) -> IngestResult:
        report = ingest(paths.source, out, config.ingest)
        by_reason = {f"quarantined.{k}": float(v) for k, v in report["quarantined_by_reason"].items()}
        tracker.log_metrics({k: float(report[k]) for k in COUNTS} | by_reason)
        tracker.log_artifact(out / QUARANTINE)
        return IngestResult(step="ingest", out=str(out), quarantine=str(out / QUARANTINE), stats=report)

    return run_step(config, "ingest", out, work, params={"source": paths.source})
