"""``damo score --data DIR --out DIR``: the CLI adapter of :mod:`damo.steps.score`."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="preference dataset folder")
    parser.add_argument("--out", required=True, help="folder for the scored dataset")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.steps.score import ScorePaths
    from damo.steps.score import run as run_step

    return run_step(config, ScorePaths(data=Path(args.data), out=Path(args.out)))
