"""Record, or check bit for bit, the per-step training metrics of a short tiny-world run.

A refactor of the train path must not change a single bit of what training computes. This script
scores the cached tiny world's dataset once (CLIP hardness, the input of the DAMA arm), then runs
``damo train`` for a few steps at a fixed seed and writes every per-step metric except the timings:

    python scripts/train_losses.py record WORLD OUT.json   # before the change
    python scripts/train_losses.py check WORLD OUT.json    # after: exit 1 on any differing bit

WORLD is a built tiny world (``damo tiny-world --out WORLD``, or the cached one under .cache/).
Floats are compared through ``float.hex``: equal means equal in every bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 10
TRAIN_SETTINGS = (f"train.max_steps={STEPS}", "train.logging_steps=1", "train.save_steps=5",
                  "train.global_batch_size=8", "train.micro_batch_size=4", "train.learning_rate=1e-4",
                  "train.reference=on_the_fly", "train.loss.arm=dama", "seed=0",
                  # pinned, not the demo preset's choices: a preset change is no change of the train path
                  "train.loss.rejected_tokens=all", "train.select.benchmark=null")
TIMINGS = ("seconds", "per_s", "time")  # metric names holding a wall-clock measure


def damo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "damo", *args], check=True, stdout=subprocess.DEVNULL)


def measure(world: Path, work: Path) -> list[dict[str, str]]:
    scored = work / "scored"
    damo("score", "--config", "tiny", "--set", f"score.clip_model={world / 'clip'}",
         "--data", str(world / "data"), "--out", str(scored))
    out = work / "train"
    sets = [arg for s in TRAIN_SETTINGS for arg in ("--set", s)]
    damo("train", "--config", "tiny", *sets, "--data", str(scored), "--model", str(world / "policy"),
         "--out", str(out))
    history = json.loads((out / "metrics.json").read_text())["history"]
    return [{k: float(v).hex() for k, v in row.items() if not any(t in k for t in TIMINGS)}
            for row in history]


def main(argv: list[str]) -> int:
    mode, world, record = argv[0], Path(argv[1]), Path(argv[2])
    with tempfile.TemporaryDirectory(prefix="damo-losses-") as tmp:
        now = measure(world, Path(tmp))
    if mode == "record":
        record.write_text(json.dumps(now, indent=1))
        print(f"recorded {len(now)} steps → {record}")
        return 0
    before = json.loads(record.read_text())
    if now == before:
        print(f"bit for bit equal: {len(now)} steps, {len(now[0])} metrics each")
        return 0
    for i, (a, b) in enumerate(zip(before, now, strict=False)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                print(f"step {i + 1} {key}: before {a.get(key)} now {b.get(key)}")
    if len(before) != len(now):
        print(f"steps: before {len(before)} now {len(now)}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
