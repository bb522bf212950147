"""``damo stack up|down|status``: the local SeaweedFS + MLflow server (:mod:`damo.stack`).

``up`` prints the endpoints and the path of ``client.env`` (mode 0600), never a credential; load it
into a shell with ``set -a; . .damo/stack/client.env; set +a``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    from damo import stack

    try:
        if args.action == "up":
            env = stack.up(config)
            client_env = stack.state_dir(config.stack) / stack.CLIENT_ENV_FILE
            return {"up": True, "tracking_uri": env.tracking_uri, "s3_endpoint": env.s3_endpoint,
                    "bucket": env.bucket, "client_env": str(client_env)}
        if args.action == "down":
            return stack.down(config)
        return stack.status(config)
    except (stack.StackError, OSError) as err:
        sys.stderr.write(f"damo stack {args.action}: {err}\n")
        return 1
