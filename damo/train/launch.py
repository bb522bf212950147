"""Launch ``train.num_processes`` training ranks on this node with ``torch.distributed.run``.

Each rank is a :mod:`damo.train.worker` process running :func:`damo.train.session.train_here`, the
same code a single-process run calls; rank 0 writes ``out/result.json``, which the launcher reads
back as the step's :class:`~damo.train.session.TrainResult`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from damo.config import DamoConfig, save_resolved
from damo.skeleton import RESULT_FILE
from damo.train.loop import TrainingError
from damo.train.results import TrainResult
from damo.train.session import TrainPaths

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def launch(config: DamoConfig, paths: TrainPaths) -> TrainResult:
    """Start ``num_processes`` workers with torch.distributed.run on this node; wait; read the result."""
    launch_dir = paths.out / "launch"
    config_path = save_resolved(config, launch_dir)
    result_path = paths.out / RESULT_FILE
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={config.train.num_processes}", "-m", "damo.train.worker",
               "--config", str(config_path), "--data", str(paths.data), "--model", str(paths.model),
               "--out", str(paths.out)]
    log.info("launching %d training processes: %s", config.train.num_processes, " ".join(command))
    completed = subprocess.run(command, check=False, preexec_fn=_end_with_parent())
    if completed.returncode != 0:
        raise TrainingError(f"the {config.train.num_processes} training processes failed with exit code "
                            f"{completed.returncode} (their log is above); checkpoints: "
                            f"{paths.out / 'checkpoints'}")
    if not result_path.is_file():
        raise TrainingError(f"training processes exited 0 but wrote no {result_path}")
    return TrainResult.from_json(result_path.read_text())


def _end_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send the launcher SIGTERM when this process dies, however it
    dies. Without it a SIGKILLed ``damo train`` leaves torchrun and its ranks training on, writing
    checkpoints into the same folder a rerun resumes from. torchrun passes SIGTERM on to its ranks.
    libc is loaded here, before the fork: the child only makes one C call (fork-safe with threads)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def end_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return end_with_parent
