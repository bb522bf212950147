"""``damo register --model DIR --name NAME [--metrics FILE] [--data DIR] [--out DIR]``: the CLI
adapter of :mod:`damo.steps.register`. With no tracking URI configured, the local stack is used."""

from __future__ import annotations

import argparse
from pathlib import Path

from damo.config import DamoConfig
from damo.skeleton import StepResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF model folder (or the train output folder)")
    parser.add_argument("--name", default=None, help="registered model name (default: registry.model_name)")
    parser.add_argument("--metrics", default=None, help="the evaluate step's metrics.json")
    parser.add_argument("--data", default=None, help="the preference dataset trained on")
    parser.add_argument("--out", default=None, help="folder for result.json and model_card.md")


def run(config: DamoConfig, args: argparse.Namespace) -> StepResult:
    from damo.registry import check_inputs
    from damo.stack import use_local_stack_if_unset
    from damo.steps.register import RegisterPaths, hf_folder
    from damo.steps.register import run as run_step

    if args.name is not None:  # --name '' is refused by the registry's name check, not ignored
        config.registry.model_name = args.name
    optional = {key: Path(value) for key in ("metrics", "data", "out") if (value := getattr(args, key))}
    paths = RegisterPaths(model=Path(args.model), **optional)
    check_inputs(config, hf_folder(paths.model), paths.metrics, paths.data)  # before starting anything
    use_local_stack_if_unset(config)
    return run_step(config, paths)
