"""Step ``tiny_world``: build the offline world (dataset, tiny policy, tiny CLIP, benchmark)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, save_resolved
from damo.tinyworld import build
from damo.tracking import open_tracker


@dataclass(frozen=True)
class TinyWorldPaths:
    out: Path  # the world folder to create (absent or empty)


def run(config: DamoConfig, paths: TinyWorldPaths) -> dict[str, Any]:
    """Build the world into ``paths.out``; returns its summary (build time, CLIP and policy quality)."""
    out = Path(paths.out)
    tracker = open_tracker(config, "tiny_world")
    try:
        summary = build(config, out)
        save_resolved(config, out)
        result = {"step": "tiny_world", **summary}
        (out / "result.json").write_text(json.dumps(result, indent=2))
        tracker.log_params({"tiny_world." + k: v for k, v in config.tiny_world.model_dump().items()}
                           | {"seed": config.seed})
        tracker.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
        tracker.log_artifact(out / "report.json")
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close()
    return result
