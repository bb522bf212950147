"""``damo reference --data DIR --model URI --out DIR``: the CLI adapter of :mod:`damo.steps.reference`."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="preference dataset folder")
    parser.add_argument("--model", required=True,
                        help="reference (SFT) model: folder, s3:// or models:/NAME@ALIAS")
    parser.add_argument("--out", required=True, help="folder for the dataset with reference log-probs")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as run_step

    return run_step(config, ReferencePaths(data=Path(args.data), model=args.model, out=Path(args.out)))
