"""``damo reference --data DIR --model URI --out DIR``: the CLI adapter of :mod:`damo.steps.reference`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="preference dataset folder")
    parser.add_argument("--model", required=True,
                        help="reference (SFT) model: folder, s3:// or models:/NAME@ALIAS")
    parser.add_argument("--out", required=True, help="folder for the dataset with reference log-probs")


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    from damo.data.dataset import DatasetError
    from damo.models import ModelError
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as run_step

    try:
        return run_step(config, ReferencePaths(data=Path(args.data), model=args.model, out=Path(args.out)))
    except (DatasetError, ModelError) as err:
        sys.stderr.write(f"damo reference: {err}\n")
        return 1
