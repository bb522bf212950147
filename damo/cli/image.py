"""``damo image build [--push REGISTRY] [--base IMAGE] [--ca-bundle FILE]``: the pipeline image.

Run from a damo checkout. Prints one JSON line whose ``image`` is the pinned reference
(``REGISTRY/damo@sha256:…`` after a push; the local tag otherwise) and records it in
``pipeline.image_record`` (default ``.damo/image.json``), where ``damo compile``/``submit``/
``schedule`` and ``damo run --runner docker`` find it when ``pipeline.image`` is unset.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from damo.config import DamoConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["build"], help="build: build (and push) the pipeline image")
    parser.add_argument("--push", metavar="REGISTRY", default=None,
                        help="push to this registry (host[:port][/path]) and pin the image by its digest")
    parser.add_argument("--base", metavar="IMAGE", default=None,
                        help="the base image (default: the Dockerfile's pinned CUDA base)")
    parser.add_argument("--ca-bundle", metavar="FILE", type=Path, default=None,
                        help="a CA bundle pip trusts during the build (TLS-inspecting proxies)")
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="the damo checkout (default: .)")


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any]:
    from damo.container.build import BuildOptions, build

    return build(BuildOptions(source=args.source.resolve(), record=Path(config.pipeline.image_record),
                              base=args.base, ca_bundle=args.ca_bundle, push=args.push))
