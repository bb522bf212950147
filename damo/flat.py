"""The one nested-dict flattener: ``{"train": {"loss": {"beta": 0.1}}}`` → ``{"train.loss.beta": 0.1}``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested mappings; other values (lists too) stay as they are, an empty mapping
    is a value of its own."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a metric can hold."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def numbers(tree: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric leaves of ``tree``, flattened, as floats."""
    return {k: float(v) for k, v in flatten(tree).items() if is_number(v)}
