"""``damo ingest --source URI --out DIR``: the CLI adapter of :mod:`damo.steps.ingest`."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="local file/folder or s3://bucket/prefix")
    parser.add_argument("--out", required=True, help="folder for the preference dataset")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.steps.ingest import IngestPaths
    from damo.steps.ingest import run as run_step

    return run_step(config, IngestPaths(source=args.source, out=Path(args.out)))
