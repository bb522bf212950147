"""``damo schedule --host URL --cron EXPR``: a recurring run of the pipeline (scheduled retraining).

KFP cron expressions have six fields, seconds first (``0 0 3 * * 1`` = Mondays 03:00).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from damo.cli.submit import add_client_arguments, client, compiled, parse_params
from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--cron", required=True, help="six-field cron, seconds first, e.g. '0 0 3 * * 1'")
    parser.add_argument("--name", default=None, help="recurring run name (default: <pipeline>-scheduled)")
    parser.add_argument("--max-concurrency", type=int, default=1)


def check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 6:
        raise ValueError(f"--cron {expr!r}: KFP needs 6 fields (seconds first), got {len(fields)}")
    return expr


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    p = config.pipeline
    try:
        cron, params = check_cron(args.cron), parse_params(args.params)
    except ValueError as err:
        sys.stderr.write(f"damo schedule: {err}\n")
        return 2
    kfp_client = client(args)
    # kfp's client prints UI links on stdout; stdout is for the one JSON line
    with compiled(config, args) as package, contextlib.redirect_stdout(sys.stderr):
        experiment = kfp_client.create_experiment(name=args.experiment or p.kfp_experiment,
                                                  namespace=args.namespace)
        recurring = kfp_client.create_recurring_run(
            experiment_id=experiment.experiment_id, job_name=args.name or f"{p.name}-scheduled",
            cron_expression=cron, max_concurrency=args.max_concurrency, no_catchup=True,
            params=params, pipeline_package_path=str(package),
            service_account=p.service_account)
    return {"recurring_run_id": recurring.recurring_run_id, "cron": cron, "host": args.host,
            "experiment_id": experiment.experiment_id}
