"""Step ``train``: DAMA (or an ablation arm) on DeepSpeed → ``out/model/``, ``out/checkpoints/``, metrics.

One code path for the CLI, the KFP component and tests: :func:`run`. With ``train.num_processes > 1``
and no launcher around it, it launches the ranks (:mod:`damo.train.launch`); otherwise this process
is the one rank, or one of the ranks a launcher started (:func:`damo.train.session.train_here`).
"""

from __future__ import annotations

import os

from damo.config import DamoConfig
from damo.train.launch import launch
from damo.train.results import TrainResult
from damo.train.session import TrainPaths, train_here

__all__ = ["TrainPaths", "TrainResult", "run"]


def run(config: DamoConfig, paths: TrainPaths) -> TrainResult:
    """Train; returns the result also written to ``out/result.json``."""
    # Under a launcher (torchrun, a Kubeflow job) every rank trains here; a lone process launches.
    already_launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if config.train.num_processes > 1 and not already_launched:
        return launch(config, paths)
    return train_here(config, paths)
