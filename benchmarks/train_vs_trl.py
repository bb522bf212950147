"""damo's trainer (plain-DPO arm) against TRL's DPOTrainer: same tiny LLaVA, data, batch, machine, run.

Usage: ``python benchmarks/train_vs_trl.py [--steps 30] [--batch 8] [--threads 1]``

Each side trains in its own fresh subprocess (so that peak memory is its own): damo's
``damo.steps.train`` with ``train.loss.arm=dpo`` on one process (DeepSpeed engine, ZeRO stage 0, fp32;
reference log-probs precomputed once by ``damo reference``, as the pipeline does) and TRL's
``DPOTrainer`` (its reference model forward every step, as TRL does by default). The data set is one
global batch of pairs, so both sides see the same pairs in every step whatever their sampler.

Measured: steady-state pairs/s (median over steps after the first two, from the time between
consecutive step ends), peak resident memory above its level when training begins (imports, model
loading and engine/trainer set-up excluded on both sides), and the first
step's loss and mean chosen/rejected log-probs (equal within 1e-4 when both compute the same thing).
Ends with ``ratio pairs_per_s=<ours/TRL> peak_memory=<ours/TRL>``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUICK_WORLD = (
    "tiny_world.sft_steps=0",
    "tiny_world.clip_steps=0",
    "tiny_world.num_pairs=64",
    "tiny_world.eval_images=8",
)
LR = 1e-4
BETA = 0.1


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak - base`` is what training added."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self.rebase()
        self._thread.start()
        return self

    def rebase(self) -> None:
        """Count from now: called when the first training step begins (set-up and imports excluded)."""
        self.base = self.peak = self.now()

    def stop(self) -> None:
        """Stop counting: called when the last training step ends (saving the model excluded)."""
        if not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.set()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._thread.join()


def prepare(work: Path, batch: int) -> tuple[Path, Path]:
    """A quick tiny world; one batch of its train pairs with reference log-probs → (data, model)."""
    from damo.config import load_config
    from damo.data.dataset import DatasetWriter, PreferenceDataset
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference
    from damo.tinyworld import build

    build(load_config("tiny", QUICK_WORLD), work / "world")
    source = PreferenceDataset(work / "world" / "data")
    rows = source.read(split="train").slice(0, batch)
    writer = DatasetWriter(work / "pairs", schema=rows.schema)
    writer.write_table(rows)
    writer.close()
    policy = str(work / "world" / "policy")
    reference(load_config("tiny"), ReferencePaths(work / "pairs", policy, work / "ref"))
    return work / "ref", work / "world" / "policy"


def run_ours(data: Path, model: Path, out: Path, steps: int, batch: int) -> dict[str, Any]:
    import deepspeed  # noqa: F401  (imported before measuring, as TRL's side imports trl first)

    from damo.config import load_config
    from damo.data.dataset import PreferenceDataset
    from damo.steps.train import TrainPaths, run

    config = load_config(
        "tiny",
        [
            "train.loss.arm=dpo",
            f"train.loss.beta={BETA}",
            f"train.learning_rate={LR}",
            "train.weight_decay=0",
            f"train.global_batch_size={batch}",
            f"train.micro_batch_size={batch}",
            f"train.max_steps={steps}",
            "train.zero_stage=0",
            "train.logging_steps=1",
            f"train.save_steps={steps}",
            "train.lr_schedule=constant",
            "train.warmup_ratio=0",
        ],
    )
    from damo.train.loop import Trainer

    step = Trainer.train_step
    started: list[bool] = []

    def first_step_rebases(self: Trainer, index: int) -> dict[str, float]:
        if not started:
            started.append(True)
            memory.rebase()
        summary = step(self, index)
        if index == steps - 1:
            memory.stop()
        return summary

    Trainer.train_step = first_step_rebases  # type: ignore[method-assign]
    with PeakRss() as memory:
        run(config, TrainPaths(data=data, model=str(model), out=out))
    history = json.loads((out / "metrics.json").read_text())["history"]
    table = PreferenceDataset(data).read(["reference_chosen_logps", "reference_rejected_logps"])
    return {
        "step_seconds": [batch / h["pairs_per_s"] for h in history],
        "first_loss": history[0]["loss"],
        # at step 1 the policy is the reference, so its log-probs are the stored reference columns
        "first_logps_chosen": statistics.fmean(table.column(0).to_pylist()),
        "first_logps_rejected": statistics.fmean(table.column(1).to_pylist()),
        "peak_bytes": memory.peak - memory.base,
    }


def run_trl(data: Path, model_dir: Path, out: Path, steps: int, batch: int) -> dict[str, Any]:
    import copy
    import io

    from datasets import Dataset
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from damo.data.dataset import PreferenceDataset
    from damo.train.batch import completion_text

    rows = PreferenceDataset(data).read(["image", "question", "chosen", "rejected"]).to_pylist()
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    model.model.vision_tower.requires_grad_(False)  # as damo's default: vision tower frozen
    processor = AutoProcessor.from_pretrained(model_dir)
    # The same chat-template text as damo. TRL tokenizes prompts without special tokens (it expects
    # the template to hold BOS; LLaVA-1.5's does not), so BOS is written into the prompt text here to
    # give TRL the token sequence LLaVA was trained on and damo feeds.
    texts = [
        (
            completion_text(processor, r["question"], r["chosen"]),
            completion_text(processor, r["question"], r["rejected"]),
        )
        for r in rows
    ]
    bos = processor.tokenizer.bos_token
    dataset = Dataset.from_dict(
        {
            "images": [[Image.open(io.BytesIO(r["image"])).convert("RGB")] for r in rows],
            "prompt": [bos + chosen[0] for chosen, _ in texts],
            "chosen": [chosen[1] for chosen, _ in texts],
            "rejected": [rejected[1] for _, rejected in texts],
        }
    )
    ends: list[float] = []
    logs: list[dict[str, float]] = []

    class Timer(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            memory.rebase()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())
            if state.global_step == steps:
                memory.stop()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                logs_list.append(dict(logs))

    logs_list = logs
    args = DPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=LR,
        beta=BETA,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        max_length=None,
        remove_unused_columns=False,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        dataloader_num_workers=0,
    )
    with PeakRss() as memory:
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model).eval(),
            args=args,
            train_dataset=dataset,
            processing_class=processor,
            callbacks=[Timer()],
        )
        start = time.perf_counter()
        trainer.train()
    marks = [start, *ends]
    return {
        "step_seconds": [b - a for a, b in itertools.pairwise(marks)],
        "first_loss": logs[0]["loss"],
        "first_logps_chosen": logs[0].get("logps/chosen"),
        "first_logps_rejected": logs[0].get("logps/rejected"),
        "peak_bytes": memory.peak - memory.base,
    }


def child(side: str, work: Path, steps: int, batch: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    fn = run_ours if side == "ours" else run_trl
    result = fn(work / "ref", work / "world" / "policy", work / f"out-{side}", steps, batch)
    (work / f"{side}.json").write_text(json.dumps(result))


def steady(step_seconds: list[float], batch: int) -> float:
    return batch / statistics.median(step_seconds[2:] or step_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.work, args.steps, args.batch, args.threads)
        return
    work = Path(tempfile.mkdtemp(prefix="damo-vs-trl-"))
    prepare(work, args.batch)
    rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
    for _ in range(args.rounds):  # alternate sides so that a load change on the machine hits both
        for side in ("ours", "trl"):
            shutil.rmtree(work / f"out-{side}", ignore_errors=True)
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--side",
                    side,
                    "--work",
                    str(work),
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
            )
            rounds[side].append(json.loads((work / f"{side}.json").read_text()))
    # each side's best round: the least disturbed by other load on a shared machine
    ours, trl = (max(rounds[side], key=lambda r: steady(r["step_seconds"], args.batch)) for side in rounds)
    print(
        f"tiny LLaVA, {args.batch} pairs/step, {args.steps} steps, {args.threads} thread(s), CPU, "
        f"best of {args.rounds} alternating rounds"
    )
    print(f"{'':24}{'damo':>12}{'TRL':>12}")
    for key in ("first_loss", "first_logps_chosen", "first_logps_rejected"):
        print(f"{key:24}{ours[key]:>12.6f}{trl[key]:>12.6f}")
    pps_ours, pps_trl = steady(ours["step_seconds"], args.batch), steady(trl["step_seconds"], args.batch)
    print(f"{'pairs/s (steady)':24}{pps_ours:>12.2f}{pps_trl:>12.2f}")
    mib = 2**20
    print(f"{'peak memory added (MiB)':24}{ours['peak_bytes'] / mib:>12.1f}{trl['peak_bytes'] / mib:>12.1f}")
    for key in ("first_loss", "first_logps_chosen", "first_logps_rejected"):
        if abs(ours[key] - trl[key]) > 1e-4:
            print(f"MISMATCH {key}: {ours[key]} vs {trl[key]}")
    memory_ratio = ours["peak_bytes"] / max(trl["peak_bytes"], 1)
    print(f"ratio pairs_per_s={pps_ours / pps_trl:.3f} peak_memory={memory_ratio:.3f}")


if __name__ == "__main__":
    main()
