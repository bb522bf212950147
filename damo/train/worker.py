"""One training rank under ``torch.distributed.run``: ``python -m damo.train.worker --config ... ``.

Started by :func:`damo.train.launch.launch`; runs :func:`damo.train.session.train_here`, the same code
a single-process run uses.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch.distributed as dist

from damo.config import load_config
from damo.train.session import TrainPaths, train_here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="damo.train.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [rank %(process)d] %(name)s: %(message)s")
    try:
        train_here(load_config(args.config), TrainPaths(data=args.data, model=args.model, out=args.out))
    finally:
        # Tear the process group down before the interpreter does: left to exit-time destructors,
        # gloo's threads were once seen to abort a rank ("terminate called without an active
        # exception") after a fully successful run.
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
