"""Step ``tiny_world``: build the offline world (dataset, tiny policy, tiny CLIP, benchmark)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult, run_step
from damo.tinyworld import build
from damo.tracking import Tracker


@dataclass(frozen=True)
class TinyWorldPaths:
    out: Path  # the world folder to create (absent or empty)


def run(config: DamoConfig, paths: TinyWorldPaths) -> StepResult:
    """Build the world into ``paths.out``; returns its summary (build time, CLIP and policy quality)."""
    out = Path(paths.out)

    def work(tracker: Tracker) -> StepResult:
        summary = build(config, out)
        tracker.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
        tracker.log_artifact(out / "report.json")
        return StepResult(step="tiny_world", out=summary.pop("out"), stats=summary)

    return run_step(config, "tiny_world", out, work)
