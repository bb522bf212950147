"""``damo train --data DIR --model URI --out DIR``: the CLI adapter of :mod:`damo.steps.train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="preference dataset (with delta; with reference log-probs unless "
                             "train.reference=on_the_fly)")
    parser.add_argument("--model", required=True,
                        help="policy to start from: folder, s3:// or models:/NAME@ALIAS")
    parser.add_argument("--out", required=True,
                        help="output folder; re-running on it resumes from its checkpoints")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.steps.train import TrainPaths
    from damo.steps.train import run as run_step

    return run_step(config, TrainPaths(data=Path(args.data), model=args.model, out=Path(args.out)))
