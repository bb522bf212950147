"""A real `damo train` killed with SIGKILL mid-run resumes from its last checkpoint and continues the
losses of an uninterrupted run: same weights, optimizer, scheduler, RunningGap, data position, RNG."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from damo.config import load_config
from damo.steps.reference import ReferencePaths
from damo.steps.reference import run as reference
from damo.steps.train import TrainPaths, run
from tests.unit.train.tiny import build_tiny_llava, build_tiny_pairs

pytestmark = pytest.mark.integration

SETTINGS = ["train.global_batch_size=4", "train.micro_batch_size=2", "train.max_steps=40",
            "train.save_steps=4",
            "train.logging_steps=1", "train.learning_rate=1e-3", "train.lr_schedule=cosine",
            "train.warmup_ratio=0.2", "train.loss.arm=dama", "train.keep_checkpoints=2",
            "train.select.benchmark=null"]
START_TIMEOUT_S = 240  # process start-up (imports, DeepSpeed init) on a busy 2-core machine


def damo_train(data: Path, model: Path, out: Path, settings: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``damo train`` in the background; its stderr goes to ``log`` (read back when it fails)."""
    args = [sys.executable, "-m", "damo", "train", "--config", "tiny", "--data", str(data),
            "--model", str(model), "--out", str(out)]
    for setting in settings:
        args += ["--set", setting]
    with log.open("wb") as err:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)


def wait_for_no_process_writing(out: Path, timeout_s: float = 60.0) -> None:
    """Wait until no process names ``out`` on its command line (the launcher and ranks of a run)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [
            p.pid
            for p in psutil.process_iter(["cmdline", "status"])
            if str(out) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes of the killed run still alive: {alive}"
        time.sleep(0.2)


def history(out: Path) -> list[dict[str, float]]:
    return json.loads((out / "metrics.json").read_text())["history"]


@pytest.mark.parametrize("layout", [
    ["train.num_processes=1", "train.zero_stage=2"],
    # Two ranks, ZeRO-3: parameters, gradients and optimizer state sharded, one file set per rank.
    ["train.num_processes=2", "train.zero_stage=3"],
], ids=["1proc-zero2", "2proc-zero3"])
def test_sigkill_then_resume_continues_the_uninterrupted_losses(tmp_path: Path, layout: list[str]) -> None:
    settings = SETTINGS + layout
    model = build_tiny_llava(tmp_path / "model")
    data = tmp_path / "ref"
    reference(load_config("tiny"), ReferencePaths(build_tiny_pairs(tmp_path / "pairs"), str(model), data))
    out = tmp_path / "killed"
    proc = damo_train(data, model, out, settings, tmp_path / "killed.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (out / "checkpoints" / "step-00000004" / "complete.json").is_file():
        assert proc.poll() is None, "damo train exited before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    wait_for_no_process_writing(out)  # launched ranks end with their launcher, not train on
    assert not (out / "result.json").exists()  # it really died mid-run

    resumed = damo_train(data, model, out, settings, tmp_path / "resumed.log")
    stdout, _ = resumed.communicate(timeout=START_TIMEOUT_S)
    assert resumed.returncode == 0, (tmp_path / "resumed.log").read_text()[-4000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert 4 <= result["resumed_from"] < 40

    run(load_config("tiny", settings), TrainPaths(data=data, model=str(model), out=tmp_path / "straight"))
    straight = history(tmp_path / "straight")
    again = history(out)
    assert [h["step"] for h in again] == [h["step"] for h in straight]
    for key in ("loss", "running_gap", "lr", "rewards/margin", "kept"):
        assert [h[key] for h in again] == pytest.approx([h[key] for h in straight], abs=1e-5), key
    assert result["running_gap"]["mean"] == pytest.approx(
        json.loads((tmp_path / "straight" / "result.json").read_text())["running_gap"]["mean"], abs=1e-6)
