"""``damo <verb>``: a thin adapter over ``damo.steps`` (and, for cluster verbs, ``pipelines``).

Each verb lives in ``damo/cli/<module>.py`` with ``add_arguments(parser)`` and ``run(config, args)``;
this module only parses ``--config``/``--set``, loads the config and dispatches. Verb modules are
imported lazily so that ``damo --help`` stays fast and ``damo`` never imports kfp at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from damo.config import ConfigError, load_config
from damo.errors import DamoError

# verb → (module under damo.cli, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "tiny-world": ("tiny_world", "build the offline tiny world: dataset, tiny policy, tiny CLIP"),
    "ingest": ("ingest", "raw preference data → preference dataset + quarantine"),
    "score": ("score", "add CLIP hardness (delta) to a preference dataset"),
    "reference": ("reference", "add reference-model log-probs to a preference dataset"),
    "train": ("train", "DAMA training on DeepSpeed → HF model folder"),
    "evaluate": ("evaluate", "benchmark metrics, answers and a report"),
    "register": ("register", "log a model folder as an MLflow model version"),
    "pull": ("pull", "download a registered model version to a folder"),
    "prune": ("prune", "delete model uploads that no registered version refers to"),
    "stack": ("stack", "the local object store + MLflow server: up / down / status"),
    "run": ("run", "the whole pipeline locally through kfp.local"),
    "image": ("image", "build (and push) the pipeline image with the local Docker engine"),
    "compile": ("compile", "compile the KFP pipeline to YAML"),
    "submit": ("submit", "submit a pipeline run to a Kubeflow Pipelines host"),
    "schedule": ("schedule", "create a recurring pipeline run"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen verb's module is imported (the others get no options)."""
    parser = argparse.ArgumentParser(prog="damo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (module, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=None, help="preset name (configs/) or YAML path")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.loss.beta=0.2 (repeatable)")
        p.add_argument("-v", "--verbose", action="store_true")
        p.add_argument("--debug", action="store_true",
                       help="show the Python traceback of a failure, not just its one-line message")
        p.set_defaults(_module=module)
        if verb == name:
            _verb_module(module).add_arguments(p)
    return parser


def _verb_module(module: str) -> Any:
    return importlib.import_module(f"damo.cli.{module}")


def emit(result: dict[str, Any]) -> None:
    """The one machine-readable line a verb prints on stdout."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """While a verb runs, whatever else writes to stdout (MLflow's "View run" line, a library's print,
    a child process) goes to stderr, so stdout carries only the JSON summary that :func:`emit` writes."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: nothing for a child to write into either
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(verb if verb in VERBS else None).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config, args.overrides)
        with _stdout_to_stderr():
            result = _verb_module(args._module).run(config, args)
    except DamoError as err:
        # Every verb fails the same way: one line naming what is wrong, a non-zero exit. The
        # traceback is for developers (--debug); a user acts on the message.
        if args.debug:
            raise
        sys.stderr.write(f"damo {args.verb}: {_one_line(err)}\n")
        return 2 if isinstance(err, ConfigError) else 1  # 2: the invocation is wrong; 1: the run failed
    if isinstance(result, Mapping):  # a step's result (StepResult), or a cluster verb's dict
        emit(dict(result))
        return 0
    return int(result or 0)


def _one_line(err: BaseException) -> str:
    """The error's message on one line (chained causes are already named in damo's messages)."""
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
