"""``damo compile --out FILE``: the KFP pipeline YAML for the config, to upload in the Kubeflow UI."""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from damo.config import DamoConfig


def add_image_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-unpinned-image``: shared by every verb that names the pipeline image."""
    parser.add_argument("--allow-unpinned-image", action="store_true",
                        help="development only: accept a pipeline image not pinned by digest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the pipeline YAML to write")
    add_image_argument(parser)


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any]:
    from damo.container.reference import with_image
    from pipelines import compile_pipeline

    config = with_image(config, allow_unpinned=args.allow_unpinned_image)
    out = compile_pipeline(config, args.out)
    return {"pipeline": str(out), "name": config.pipeline.name, "image": config.pipeline.image,
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
