"""``damo tiny-world --out DIR``: the CLI adapter of :mod:`damo.steps.tiny_world`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=".damo/tiny-world", help="folder for the world (absent or empty)")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult | int:
    from damo.steps.tiny_world import TinyWorldPaths
    from damo.steps.tiny_world import run as run_step

    try:
        return run_step(config, TinyWorldPaths(out=Path(args.out)))
    except FileExistsError as err:
        sys.stderr.write(f"damo tiny-world: {err}\n")
        return 1
