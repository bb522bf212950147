"""``damo compile --out FILE``: the KFP pipeline YAML for the config, to upload in the Kubeflow UI."""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the pipeline YAML to write")


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any]:
    from pipelines import compile_pipeline

    out = compile_pipeline(config, args.out)
    return {"pipeline": str(out), "name": config.pipeline.name,
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
