"""Which image a compiled pipeline (and ``damo run --runner docker``) names, and the pin check.

The image is configuration: ``pipeline.image``, else the reference the last ``damo image build``
recorded in ``pipeline.image_record`` (default ``.damo/image.json``, relative to the working
directory). A compiled pipeline must run exactly the code it was compiled with, so the reference
must be pinned by digest (``name@sha256:<64 hex>``, optionally ``name:tag@sha256:…``); a
development flag (``--allow-unpinned-image``) lifts that.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from damo.config import ConfigError, DamoConfig

PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def is_pinned(reference: str) -> bool:
    return bool(PINNED.match(reference))


def record(path: Path, reference: str, **facts: Any) -> Path:
    """Write the built image's reference (and how it was made) where compile and run find it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"image": reference, "pinned": is_pinned(reference),
             "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **facts}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, indent=2) + "\n")
    tmp.replace(path)
    return path


def recorded(path: Path) -> str | None:
    """The reference in the record file, or None when there is none."""
    if not path.is_file():
        return None
    try:
        image = json.loads(path.read_text())["image"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not an image record written by `damo image build` ({err})") from None
    if not isinstance(image, str) or not image:
        raise ConfigError(f"{path}: 'image' must be a non-empty string")
    return image


def resolve_image(config: DamoConfig, *, allow_unpinned: bool = False) -> str:
    """``pipeline.image``, else the recorded one; refused unless pinned by digest (or allowed)."""
    p = config.pipeline
    record_file = Path(p.image_record)
    image = p.image or recorded(record_file)
    source = "pipeline.image" if p.image else f"the image recorded in {record_file}"
    if image is None:
        raise ConfigError(
            f"no pipeline image: set pipeline.image to name@sha256:<digest>, or build and push one with "
            f"`damo image build --push REGISTRY` (it records the reference in {record_file})")
    if not allow_unpinned and not is_pinned(image):
        raise ConfigError(
            f"{source} {image!r} is not pinned by digest (name@sha256:<64 hex digits>): a compiled "
            "pipeline must name exactly the image it was built with. Push it (`damo image build --push "
            "REGISTRY`) and use the printed reference, or pass --allow-unpinned-image for development")
    return image


def with_image(config: DamoConfig, *, allow_unpinned: bool = False) -> DamoConfig:
    """A copy of ``config`` whose ``pipeline.image`` is the resolved, checked reference."""
    image = resolve_image(config, allow_unpinned=allow_unpinned)
    return config.model_copy(update={"pipeline": config.pipeline.model_copy(update={"image": image})},
                             deep=True)
