"""The tiny world: an offline, deterministic stand-in for real preference data and models.

``build(config, out)`` writes the dataset, the tiny LLaVA policy, the tiny CLIP, a held-out
benchmark and a quality report (see :mod:`damo.tinyworld.build`), in a child process whose CPU
kernels are pinned (:mod:`damo.tinyworld.pinned`).
"""

from damo.tinyworld.pinned import build

__all__ = ["build"]
