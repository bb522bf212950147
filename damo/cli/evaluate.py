"""``damo evaluate``: benchmark metrics, answers and a report (adapter over damo.steps.evaluate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult
from damo.steps.evaluate import EvaluatePaths
from damo.steps.evaluate import run as run_step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model to evaluate: folder, s3:// or models:/NAME@ALIAS")
    source.add_argument("--answers", type=Path, help="score these answers (JSONL/JSON) without generating")
    parser.add_argument("--baseline", help="compare against this model (or answers file) side by side")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    return run_step(config, EvaluatePaths(out=args.out, model=args.model, baseline=args.baseline,
                                          answers=args.answers))
