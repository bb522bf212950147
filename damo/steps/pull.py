"""Step ``pull``: a registered model version (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``)
→ a local folder that transformers' ``from_pretrained`` loads, every file checked against the
sha256 recorded at registration (:func:`damo.registry.pull`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo import registry
from damo.config import DamoConfig, save_resolved


@dataclass(frozen=True)
class PullPaths:
    model_uri: str
    out: Path  # replaced by the pulled folder once it is complete and verified
    force: bool = False  # replace a non-empty folder that is not an earlier pull


def run(config: DamoConfig, paths: PullPaths) -> dict[str, Any]:
    out = Path(paths.out)
    result = {"step": "pull", **registry.pull(config, paths.model_uri, out, paths.force)}
    save_resolved(config, out)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result
