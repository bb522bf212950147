"""damo's trainer (plain-DPO arm) against TRL's DPOTrainer on CPU, swept over model sizes.

Usage::

    python benchmarks/train_vs_trl.py [--sizes tiny,512,1024,2048] [--steps 8] [--batch 4] [--threads 1]
                                      [--rounds 2] [--max-grad-norm 1.0|none] [--prompt-once plan|on|off]

Sizes: ``tiny`` is the tiny world's LLaVA (CLIP tower 48 px, Llama width 96, 3 layers); a number is
that Llama width with 8 layers (the tiny world's CLIP tower and 400-word vocabulary): 512 ≈ 21M,
1024 ≈ 82M, 2048 ≈ 320M parameters, where weights and optimizer state dominate.

Per size, one quick tiny world (no pre-training: the weights are random, which costs the same) gives
``--batch`` pairs with reference log-probs from ``damo reference``. Each side then trains on them, in
its own fresh subprocess so that its peak memory is its own, rounds alternating (ours-TRL, TRL-ours,
...) so that a load change on a shared machine hits both:

- damo: ``damo.steps.train.run`` with ``train.loss.arm=dpo`` and the tiny preset otherwise (its
  one-process layout, :func:`damo.train.engine.plan`), reference log-probs precomputed as the pipeline
  does;
- TRL: ``DPOTrainer`` as its documentation sets up a vision-language model on one device: the model and
  its processor, ``max_length=None`` (truncation could cut image tokens), the reference model built by
  TRL from the policy's path (``ref_model=None``), TRL's default optimizer (torch's fused AdamW).

Both: the same model, pairs, batch, token sequences (the same chat-template text), thread count, fp32,
vision tower frozen, lr/β/clipping, constant schedule, no weight decay. ``--max-grad-norm`` sets the
clipping of both (default 1.0, damo's and TRL's default); ``none`` turns it off on both sides, which
lets damo's one-process engine step each parameter inside the backward (its gradients never all
exist at once; TRL has no such mode) on full sequences (``damo.train.engine.Plan.prompt_once``).
``--prompt-once on|off`` overrides damo's choice of running each pair's prompt once, for an A/B.
The data set is one batch, so
every step sees the same pairs on both sides.

Measured per side: steady pairs/s (median over steps after the first two, from the time between
consecutive step ends, data collation included on both sides), the same from process CPU time (less
sensitive to other load on a shared machine), the process's resident-memory high-water mark (VmHWM:
imports, model loading, reference model, training; read when the last step ends, so damo's final
checkpoint and model save are excluded, TRL saves nothing), and the first step's loss and mean
chosen/rejected log-probs (equal within 1e-4 when both sides compute the same thing). A side's best
round (highest pairs/s) is reported; peak memory is the worst over rounds. Ends with
``ratio pairs_per_s=<worst over sizes> peak_memory=<worst over sizes>`` (damo / TRL).
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
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUICK_WORLD = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
               "tiny_world.eval_images=8", "tiny_world.selection_images=8")
# Both sides train plain DPO summed over every response token on the last step's weights: the tiny
# preset's demo choices (the fork sum, checkpoint selection) are switched off.
PAPER_LOSS = ["train.loss.rejected_tokens=all", "train.select.benchmark=null"]
WIDE_LAYERS = 8
LR = 1e-4
BETA = 0.1
MATCH_TOLERANCE = 1e-4
SKIPPED_STEPS = 2  # warm-up steps left out of the steady rate
MIB = 2**20
CLIP = 1.0  # max_grad_norm both sides default to (damo and TRL)


def size_overrides(size: str) -> tuple[str, ...]:
    """Tiny-world overrides for a ``--sizes`` entry: ``tiny`` or a Llama width (with 8 layers)."""
    if size == "tiny":
        return ()
    if not size.isdigit():
        raise SystemExit(f"--sizes: {size!r} is neither 'tiny' nor a width such as 1024")
    return (f"tiny_world.text_width={size}", f"tiny_world.text_layers={WIDE_LAYERS}")


def grad_norm(text: str) -> float | None:
    """``--max-grad-norm``: a positive number, or ``none`` for no clipping."""
    if text.lower() == "none":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a positive norm, or none")
    return value


def high_water_mark() -> int:
    """This process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


class StepClock:
    """Wall and CPU time at the first step's start and at each step's end; the peak memory (``peak``,
    by default VmHWM) when the last step ends."""

    peak_reader = staticmethod(high_water_mark)  # the GPU benchmark reads the device's peak instead

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.peak = 0

    def begin(self) -> None:
        if not self.wall:
            self.mark()

    def mark(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        if len(self.wall) == self.steps + 1:
            self.peak = self.peak_reader()

    def result(self) -> dict[str, Any]:
        return {"step_seconds": [b - a for a, b in itertools.pairwise(self.wall)],
                "step_cpu_seconds": [b - a for a, b in itertools.pairwise(self.cpu)],
                "peak_bytes": self.peak}


def prepare(work: Path, size: str, batch: int) -> None:
    """A quick tiny world of this size; one batch of its train pairs with reference log-probs."""
    from damo.config import load_config
    from damo.data.dataset import DatasetWriter, PreferenceDataset
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference
    from damo.tinyworld import build

    build(load_config("tiny", [*QUICK_WORLD, *size_overrides(size)]), work / "world")
    rows = PreferenceDataset(work / "world" / "data").read(split="train").slice(0, batch)
    writer = DatasetWriter(work / "pairs", schema=rows.schema)
    writer.write_table(rows)
    writer.close()
    policy = str(work / "world" / "policy")
    reference(load_config("tiny", PAPER_LOSS), ReferencePaths(work / "pairs", policy, work / "ref"))


def run_ours(data: Path, model: Path, out: Path, steps: int, batch: int, max_grad_norm: float | None,
             overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    from damo.config import load_config
    from damo.data.dataset import PreferenceDataset
    from damo.steps.train import TrainPaths, run
    from damo.train.loop import Trainer

    config = load_config("tiny", [
        *PAPER_LOSS, "train.loss.arm=dpo", f"train.loss.beta={BETA}", f"train.learning_rate={LR}",
        "train.weight_decay=0",
        f"train.global_batch_size={batch}", f"train.micro_batch_size={batch}", f"train.max_steps={steps}",
        "train.logging_steps=1", f"train.save_steps={steps}", "train.lr_schedule=constant",
        "train.warmup_ratio=0", f"train.max_grad_norm={'null' if max_grad_norm is None else max_grad_norm}",
        *overrides,
    ])
    clock = StepClock(steps)
    step = Trainer.train_step

    def timed_step(self: Trainer, index: int) -> dict[str, float]:
        clock.begin()
        summary = step(self, index)
        clock.mark()
        return summary

    Trainer.train_step = timed_step  # type: ignore[method-assign]
    result = run(config, TrainPaths(data=data, model=str(model), out=out))
    history = json.loads((out / "metrics.json").read_text())["history"]
    table = PreferenceDataset(data).read(["reference_chosen_logps", "reference_rejected_logps"])
    return {
        **clock.result(),
        "layout": result["layout"],
        "first_loss": history[0]["loss"],
        # at step 1 the policy is the reference, so its log-probs are the stored reference columns
        "first_logps_chosen": statistics.fmean(table.column(0).to_pylist()),
        "first_logps_rejected": statistics.fmean(table.column(1).to_pylist()),
    }


def trl_dataset(data: Path, processor: Any) -> Any:
    """The pairs in TRL's VLM layout, with the chat-template text damo feeds."""
    import io

    from datasets import Dataset
    from PIL import Image

    from damo.data.dataset import PreferenceDataset
    from damo.train.batch import completion_text

    rows = PreferenceDataset(data).read(["image", "question", "chosen", "rejected"]).to_pylist()
    texts = [(completion_text(processor, r["question"], r["chosen"]),
              completion_text(processor, r["question"], r["rejected"])) for r in rows]
    # TRL tokenizes prompts without special tokens (it expects the template to hold BOS; LLaVA-1.5's
    # does not), so BOS is written into the prompt text: TRL then sees the token sequence damo feeds.
    bos = processor.tokenizer.bos_token
    return Dataset.from_dict({
        "images": [[Image.open(io.BytesIO(r["image"])).convert("RGB")] for r in rows],
        "prompt": [bos + chosen[0] for chosen, _ in texts],
        "chosen": [chosen[1] for chosen, _ in texts],
        "rejected": [rejected[1] for _, rejected in texts],
    })


def run_trl(data: Path, model_dir: Path, out: Path, steps: int, batch: int, max_grad_norm: float | None,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    model.model.vision_tower.requires_grad_(False)  # as damo's default: vision tower frozen
    processor = AutoProcessor.from_pretrained(model_dir)
    clock = StepClock(steps)
    logs: list[dict[str, float]] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.begin()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.mark()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                logged.append(dict(logs))

    logged = logs
    settings: dict[str, Any] = dict(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps, learning_rate=LR, beta=BETA,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, bf16=False, max_length=None,
        remove_unused_columns=False, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=max_grad_norm or 0.0, dataloader_num_workers=0,  # 0: TRL does not clip
    )
    args = DPOConfig(**{**settings, **(options or {})})
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=trl_dataset(data, processor),
                         processing_class=processor, callbacks=[Timer()])
    trainer.train()
    return {
        **clock.result(),
        "first_loss": logs[0]["loss"],
        "first_logps_chosen": logs[0].get("logps/chosen"),
        "first_logps_rejected": logs[0].get("logps/rejected"),
    }


def force_prompt_once(value: bool) -> None:
    """Override the layout's choice of running each pair's prompt once (``damo.train.engine.Plan``)."""
    from damo.train.engine import Plan

    Plan.prompt_once = property(lambda self: value)  # type: ignore[method-assign, assignment]


def child(side: str, work: Path, steps: int, batch: int, threads: int, max_grad_norm: float | None,
          prompt_once: str = "plan") -> None:
    import torch

    torch.set_num_threads(threads)
    if prompt_once != "plan":
        force_prompt_once(prompt_once == "on")
    fn = run_ours if side == "ours" else run_trl
    result = fn(work / "ref", work / "world" / "policy", work / f"out-{side}", steps, batch, max_grad_norm)
    (work / f"{side}.json").write_text(json.dumps(result))


def steady(seconds: list[float], batch: int) -> float:
    return batch / statistics.median(seconds[SKIPPED_STEPS:] or seconds)


def run_side(side: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(work / f"out-{side}", ignore_errors=True)
    (work / f"{side}.json").unlink(missing_ok=True)
    subprocess.run([sys.executable, __file__, "--side", side, "--work", str(work), "--steps", str(args.steps),
                    "--batch", str(args.batch), "--threads", str(args.threads),
                    "--max-grad-norm", str(args.max_grad_norm).lower(), "--prompt-once", args.prompt_once],
                   check=True)
    result: dict[str, Any] = json.loads((work / f"{side}.json").read_text())
    return result


def measure_size(work: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Alternating rounds; per side its best round's rates and its worst round's peak memory."""
    rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
    for r in range(args.rounds):
        for side in ("ours", "trl") if r % 2 == 0 else ("trl", "ours"):
            rounds[side].append(run_side(side, work, args))
    best = {}
    for side, results in rounds.items():
        top = max(results, key=lambda x: steady(x["step_seconds"], args.batch))
        best[side] = {**top, "pairs_per_s": steady(top["step_seconds"], args.batch),
                      "pairs_per_cpu_s": max(steady(x["step_cpu_seconds"], args.batch) for x in results),
                      "peak_bytes": max(x["peak_bytes"] for x in results)}
    return best


def report(sizes: list[str], results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    print(f"\ndamo vs TRL: {args.batch} pairs/step, {args.steps} steps, {args.threads} thread(s), CPU, "
          f"max_grad_norm {args.max_grad_norm}, "
          f"best of {args.rounds} alternating rounds; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'size':>6} {'damo p/s':>9} {'TRL p/s':>8} {'ratio':>6} {'damo p/cpu-s':>13} {'TRL p/cpu-s':>12} "
          f"{'ratio':>6} {'damo MiB':>9} {'TRL MiB':>8} {'ratio':>6}")
    worst_rate, worst_memory = float("inf"), 0.0
    for size in sizes:
        ours, trl = results[size]["ours"], results[size]["trl"]
        rate = ours["pairs_per_s"] / trl["pairs_per_s"]
        cpu_rate = ours["pairs_per_cpu_s"] / trl["pairs_per_cpu_s"]
        memory = ours["peak_bytes"] / trl["peak_bytes"]
        worst_rate, worst_memory = min(worst_rate, rate), max(worst_memory, memory)
        print(f"{size:>6} {ours['pairs_per_s']:>9.2f} {trl['pairs_per_s']:>8.2f} {rate:>6.2f} "
              f"{ours['pairs_per_cpu_s']:>13.2f} {trl['pairs_per_cpu_s']:>12.2f} {cpu_rate:>6.2f} "
              f"{ours['peak_bytes'] / MIB:>9.0f} {trl['peak_bytes'] / MIB:>8.0f} {memory:>6.2f}")
        for key in ("first_loss", "first_logps_chosen", "first_logps_rejected"):
            if abs(ours[key] - trl[key]) > MATCH_TOLERANCE:
                print(f"MISMATCH at size {size}, {key}: damo {ours[key]} vs TRL {trl[key]}")
    print(f"damo layout at one process: {results[sizes[0]]['ours']['layout']}")
    print(f"ratio pairs_per_s={worst_rate:.3f} peak_memory={worst_memory:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,512,1024,2048", help="comma-separated: tiny and/or widths")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-grad-norm", type=grad_norm, default=CLIP, help="clipping, both sides; none")
    parser.add_argument("--prompt-once", choices=["plan", "on", "off"], default="plan",
                        help="damo: each pair's prompt once (on), full sequences (off), or as planned")
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.work, args.steps, args.batch, args.threads, args.max_grad_norm,
              args.prompt_once)
        return
    if args.steps <= SKIPPED_STEPS:
        raise SystemExit(f"--steps must exceed the {SKIPPED_STEPS} warm-up steps left out of the rate")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        size_overrides(size)  # refuse a bad entry before any work
    root = Path(tempfile.mkdtemp(prefix="damo-vs-trl-"))
    results = {}
    try:
        for size in sizes:
            started = time.perf_counter()
            prepare(root / size, size, args.batch)
            results[size] = measure_size(root / size, args)
            print(f"size {size}: done in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(sizes, results, args)


if __name__ == "__main__":
    main()
