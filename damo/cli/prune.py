"""``damo prune [--dry-run]``: the CLI adapter of :func:`damo.registry_gc.prune`: delete the uploads
under the model's store prefix that no version of ``registry.model_name`` refers to. With no
tracking URI configured, the local stack is used."""

from __future__ import annotations

import argparse
from typing import Any

from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list the orphaned uploads, delete nothing")


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    from damo.registry_gc import prune
    from damo.stack import use_local_stack_if_unset

    use_local_stack_if_unset(config)
    return prune(config, dry_run=args.dry_run)
