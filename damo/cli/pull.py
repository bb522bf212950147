"""``damo pull MODEL_URI --out DIR``: the CLI adapter of :mod:`damo.steps.pull`. With no tracking URI
configured, the local stack is used."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    parser.add_argument("--out", required=True,
                        help="folder to create; an existing one is replaced only if empty or an earlier pull")
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty --out that damo did not pull into (never . or a parent)")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.registry import check_out_folder, parse_model_uri
    from damo.stack import use_local_stack_if_unset
    from damo.steps.pull import PullPaths
    from damo.steps.pull import run as run_step

    parse_model_uri(args.model_uri)  # inputs checked before a local stack is started
    check_out_folder(Path(args.out), args.force)
    use_local_stack_if_unset(config)
    return run_step(config, PullPaths(model_uri=args.model_uri, out=Path(args.out), force=args.force))
