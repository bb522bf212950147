"""Checkpoints that a SIGKILL cannot half-write: DeepSpeed state + RunningGap + RNG + metrics so far.

``out/checkpoints/step-00000040/`` holds DeepSpeed's model/optimizer/scheduler files, the client state
(step, ``RunningGap``, metric history), one RNG file per rank and, written last after every rank has
saved, ``complete.json``. Resume picks the newest folder that has ``complete.json``; the data position
follows from the step (:mod:`damo.train.data`). Older complete checkpoints beyond
``train.keep_checkpoints`` are deleted.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from damo.device import choose_device, has_cuda

log = logging.getLogger(__name__)

MARKER = "complete.json"
PREFIX = "step-"


def tag(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MARKER).is_file())


def rng_state() -> dict[str, Any]:
    """Every generator this rank draws from: torch CPU, this rank's GPU (dropout and the keep-set's
    Gumbel noise run there), Python, NumPy."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(choose_device()) if has_cuda() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    saved_cuda = state.get("cuda")
    if saved_cuda is not None and has_cuda():
        torch.cuda.set_rng_state(saved_cuda, choose_device())
    elif (saved_cuda is not None) != has_cuda():
        # Resuming across device kinds (a GPU checkpoint on a CPU or back): the run continues, but
        # its GPU-side draws cannot repeat those of an uninterrupted run. Say so.
        log.warning("checkpoint saved %s a GPU generator, resumed %s CUDA: GPU random draws differ from "
                    "an uninterrupted run", "with" if saved_cuda is not None else "without",
                    "without" if saved_cuda is not None else "with")


def save(engine: Any, root: Path, step: int, client_state: dict[str, Any], rank: int, keep: int) -> Path:
    """Save on every rank (collective); rank 0 marks it complete and prunes old ones."""
    import torch.distributed as dist

    folder = root / tag(step)
    engine.save_checkpoint(str(root), tag=tag(step), client_state=client_state)
    torch.save(rng_state(), folder / f"rng-rank{rank}.pt")
    dist.barrier()
    if rank == 0:
        (folder / MARKER).write_text(json.dumps({"step": step}))
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old)
        log.info("checkpoint %s saved", folder)
    dist.barrier()
    return folder


def load_latest(engine: Any, root: Path, rank: int) -> tuple[dict[str, Any], Path] | None:
    """Restore the newest complete checkpoint into ``engine`` and this rank's RNG; its client state."""
    found = complete_checkpoints(root)
    if not found:
        return None
    folder = found[-1]
    _, client_state = engine.load_checkpoint(str(root), tag=folder.name)
    if client_state is None:
        raise RuntimeError(f"{folder}: DeepSpeed could not load this checkpoint")
    rng_file = folder / f"rng-rank{rank}.pt"
    if not rng_file.is_file():
        raise RuntimeError(f"{folder}: {rng_file.name} is missing (was it saved with another world size?)")
    set_rng_state(torch.load(rng_file, weights_only=False))
    log.info("resumed from %s (step %s)", folder, client_state.get("step"))
    return client_state, folder
