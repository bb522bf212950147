"""Step ``ingest``: raw preference data (local or ``s3://``) → preference dataset + quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, save_resolved
from damo.data.dataset import MANIFEST
from damo.ingest import ingest
from damo.ingest.quarantine import QUARANTINE
from damo.ingest.records import IngestError
from damo.ingest.source import open_source
from damo.tracking import open_tracker


@dataclass(frozen=True)
class IngestPaths:
    source: str  # a local file/folder or s3://bucket/prefix
    out: Path  # the preference dataset folder to create (must not hold a dataset yet)


def run(config: DamoConfig, paths: IngestPaths) -> dict[str, Any]:
    """Ingest ``paths.source`` into ``paths.out``; returns the ingest report (counts by reason)."""
    out = Path(paths.out)
    if (out / MANIFEST).exists():  # checked before anything is written: its config.yaml stays as it was
        raise IngestError(f"{out} already holds a dataset ({MANIFEST}); ingest into a new or empty folder")
    open_source(paths.source)  # a missing source, or a link out of it or a FIFO in it, fails before writing
    tracker = open_tracker(config, "ingest")
    try:
        save_resolved(config, out)
        report = ingest(paths.source, out, config.ingest)
        result = {"step": "ingest", "out": str(out), "quarantine": str(out / QUARANTINE), **report}
        (out / "result.json").write_text(json.dumps(result, indent=2))
        tracker.log_params(
            {"ingest." + k: v for k, v in config.ingest.model_dump().items()} | {"source": paths.source}
        )
        by_reason = {f"quarantined.{k}": float(v) for k, v in report["quarantined_by_reason"].items()}
        counts = ("input_rows", "kept", "quarantined", "rows_per_s")
        tracker.log_metrics({k: float(report[k]) for k in counts} | by_reason)
        tracker.log_artifact(out / QUARANTINE)
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close()
    return result
