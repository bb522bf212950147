"""``damo submit --host URL``: compile the pipeline and start one run on a Kubeflow Pipelines host.

The API token, when the host needs one, comes only from the environment variable named by
``--token-env`` (default ``KFP_TOKEN``); run parameters are ``--param name=value`` (YAML values).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from damo.cli.compile import add_image_argument
from damo.config import DamoConfig


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``submit`` and ``schedule``."""
    parser.add_argument("--host", required=True,
                        help="the KFP API endpoint, e.g. https://kubeflow.example/pipeline")
    parser.add_argument("--namespace", default=None,
                        help="the Kubeflow profile namespace (multi-user installs)")
    parser.add_argument("--experiment", default=None,
                        help="KFP experiment (default: pipeline.kfp_experiment)")
    parser.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline run parameter, e.g. --param beta=0.2 (repeatable)")
    parser.add_argument("--token-env", default="KFP_TOKEN",
                        help="environment variable holding the API token (never passed on the command line)")
    add_image_argument(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--run-name", default=None)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE")
        params[name] = yaml.safe_load(raw)
    return params


def client(args: argparse.Namespace) -> Any:
    import kfp

    return kfp.Client(host=args.host, namespace=args.namespace,
                      existing_token=os.environ.get(args.token_env) or None)


@contextmanager
def compiled(config: DamoConfig, args: argparse.Namespace) -> Iterator[Path]:
    """The pipeline compiled for ``config`` (its image resolved and checked) into a temporary file."""
    from damo.container.reference import with_image
    from pipelines import compile_pipeline

    config = with_image(config, allow_unpinned=args.allow_unpinned_image)
    with tempfile.TemporaryDirectory(prefix="damo-pipeline-") as tmp:
        yield compile_pipeline(config, Path(tmp) / f"{config.pipeline.name}.yaml")


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    p = config.pipeline
    try:
        params = parse_params(args.params)
    except ValueError as err:
        sys.stderr.write(f"damo submit: {err}\n")
        return 2
    kfp_client = client(args)
    # kfp's client prints UI links on stdout; stdout is for the one JSON line
    with compiled(config, args) as package, contextlib.redirect_stdout(sys.stderr):
        result = kfp_client.create_run_from_pipeline_package(
            str(package), arguments=params, run_name=args.run_name,
            experiment_name=args.experiment or p.kfp_experiment, namespace=args.namespace,
            service_account=p.service_account)
    return {"run_id": result.run_id, "host": args.host, "pipeline": p.name}
