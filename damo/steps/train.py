"""Step ``train``: DAMA (or an ablation arm) on DeepSpeed → ``out/model/``, ``out/checkpoints/``, metrics.

One code path for the CLI, the KFP component and tests: :func:`run`. With ``train.num_processes > 1``
and no launcher around it, it launches itself as ``torch.distributed.run`` workers
(:mod:`damo.train.worker`), which call :func:`train_here` on every rank; otherwise it trains in this
process. Re-running on the same ``out`` resumes from the last complete checkpoint.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, save_resolved
from damo.models import model_provenance
from damo.tracking import open_tracker
from damo.train.loop import TrainingError, build_trainer, fit, trained_state_dict
from damo.train.results import model_card, save_model_folder, write_metrics, write_result

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


@dataclass(frozen=True)
class TrainPaths:
    data: Path
    model: str
    out: Path


def run(config: DamoConfig, paths: TrainPaths) -> dict[str, Any]:
    """Train; returns the summary also written to ``out/result.json``."""
    # Under a launcher (torchrun, a Kubeflow job) every rank trains here; a lone process launches.
    already_launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if config.train.num_processes > 1 and not already_launched:
        return launch(config, paths)
    return train_here(config, paths)


def launch(config: DamoConfig, paths: TrainPaths) -> dict[str, Any]:
    """Start ``num_processes`` workers with torch.distributed.run on this node; wait; read the result."""
    launch_dir = paths.out / "launch"
    config_path = save_resolved(config, launch_dir)
    result_path = paths.out / "result.json"
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
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


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


def train_here(config: DamoConfig, paths: TrainPaths) -> dict[str, Any]:
    """Train as one rank of the current process group (created if absent). Rank 0 writes the outputs."""
    import torch.distributed as dist

    started = time.perf_counter()
    trainer, info = build_trainer(config, paths.data, paths.model)
    tracker = open_tracker(config, "train") if trainer.rank == 0 else None
    if tracker is not None:
        tracker.log_params({"train.arm": config.train.loss.arm, "train.world_size": trainer.world,
                            "train.steps": trainer.schedule.total_steps, "train.model": str(paths.model)})
    try:
        history, resumed_from = fit(trainer, paths.out, tracker)
    except TrainingError:
        if tracker is not None:
            tracker.close("FAILED")
        raise
    state = trained_state_dict(trainer)
    result: dict[str, Any] = {"rank": trainer.rank}
    if trainer.rank == 0 and state is not None:
        result = _write_outputs(config, paths, trainer, info, history, resumed_from, state, started)
        if tracker is not None:
            tracker.log_artifact(paths.out / "metrics.json")
            tracker.close()
    dist.barrier()
    return result


def _write_outputs(config: DamoConfig, paths: TrainPaths, trainer: Any, info: dict[str, Any],
                   history: list[dict[str, float]], resumed_from: int, state: dict[str, Any],
                   started: float) -> dict[str, Any]:
    dataset = info["dataset"]
    final = history[-1] if history else {}
    base = model_provenance(paths.model, info["model_dir"])  # + the Hub commit for a Hub id
    base_text = f"{paths.model}" + (f" (Hub commit {base['hub_commit']})" if "hub_commit" in base else "")
    card = model_card(config, base_model=base_text, data=str(paths.data),
                      data_checksum=dataset.manifest.checksum, num_pairs=len(trainer.rows),
                      delta_mean=trainer.delta_mean, steps=trainer.schedule.total_steps, final=final)
    model_dir = save_model_folder(state, info["model_dir"], config, paths.out, card)
    seconds = time.perf_counter() - started
    extra = {"arm": config.train.loss.arm, "steps": trainer.schedule.total_steps, "base_model": base,
             "resumed_from": resumed_from,
             "world_size": trainer.world, "running_gap": trainer.gap.state_dict()}
    write_metrics(paths.out, history, extra)
    save_resolved(config, paths.out)
    result = {"model": str(model_dir), "checkpoints": str(paths.out / "checkpoints"),
              "metrics": str(paths.out / "metrics.json"), **extra, "seconds": round(seconds, 3),
              "final": final}
    write_result(paths.out, result)
    return result
