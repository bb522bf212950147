"""Where damo's one-process training memory sits between steps: live tensors, glibc's heap, the peak.

Usage::

    python benchmarks/train_heap_probe.py [--size 2048] [--steps 6] [--mmap-threshold-kib N]
                                          [--variant moments-first|keep-grads|free-late|flat] [--phases]
                                          [--prompt-once plan|on|off] [--max-grad-norm 1.0|none]

Builds the quick tiny world of ``benchmarks/train_vs_trl.py`` at that size (Llama width, 8 layers),
then trains it as that benchmark's damo side does (plain DPO, batch 4, clipping 1.0, one thread).
After each optimizer step it prints the resident set (``/proc/self/status``), glibc's heap
(``mallinfo2``: the heap's size, the part of it in use, the part freed but kept, and the separately
mapped blocks) and, after the second step, the bytes of the live tensors (found with ``gc``, each
storage counted once). ``--mmap-threshold-kib`` fixes glibc's mmap threshold first (``mallopt``), the
A/B of ``benchmarks/train_vs_trl.md`` ("glibc's heap at 320M parameters"). ``--variant`` patches the
one-process engine for that section's other trials (the same update each time): ``moments-first``
allocates Adam's moments when the engine is built; ``keep-grads`` adds zeroing, not freeing, the
gradients (with the moments first); ``free-late`` frees them just before the next backward, not after
the optimizer step; ``flat`` keeps the gradients and Adam's moments in one preallocated buffer each
(a hook adds each fresh gradient into its slice and drops it) and reports the most fresh-gradient
bytes alive at once. ``--phases`` prints the resident peak of each forward, backward and optimizer
step on its own. ``--prompt-once`` overrides the layout's choice of running each pair's prompt once
(``damo.train.engine.Plan``), ``--max-grad-norm none`` turns clipping off (the engine then steps in
backward). Linux with glibc only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import train_vs_trl

MIB = 2**20
FRESH = [0, 0]  # bytes of fresh gradients alive now, and the most since the last step
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LIBC = ctypes.CDLL("libc.so.6")


class MallInfo2(ctypes.Structure):
    names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
             "keepcost")
    _fields_ = [(name, ctypes.c_size_t) for name in names]


LIBC.mallinfo2.restype = MallInfo2


def resident() -> dict[str, int]:
    fields = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) // 1024 for k, _, v in (ln.partition(":") for ln in lines) if k in fields}


def live_tensor_mib() -> int:
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values()) // MIB


def report(step: int) -> None:
    heap = LIBC.mallinfo2()
    line = (f"after step {step}: {resident()} | heap {heap.arena // MIB} MiB, in use {heap.uordblks // MIB}, "
            f"freed and kept {heap.fordblks // MIB}, mapped blocks {heap.hblkhd // MIB} MiB")
    if step == 2:
        line += f" | live tensors {live_tensor_mib()} MiB"
    print(line, flush=True)


def into_buffer(view: torch.Tensor) -> Any:
    """A post-accumulate-grad hook: add the fresh gradient into ``view`` and drop it, counting the
    fresh gradients' bytes alive at once (``FRESH``: now, the most)."""
    def hook(param: torch.Tensor) -> None:
        view.add_(param.grad)
        nbytes = param.grad.nbytes
        FRESH[0] += nbytes
        FRESH[1] = max(FRESH[1], FRESH[0])
        weakref.finalize(param.grad, lambda: FRESH.__setitem__(0, FRESH[0] - nbytes))
        param.grad = None

    return hook


def patch_engine(variant: str) -> None:
    """The trials of ``--variant`` (see the module docstring), patched into the one-process engine."""
    from damo.train.local_engine import LocalEngine

    init, backward = LocalEngine.__init__, LocalEngine.backward

    def moments_first(self: LocalEngine, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for optimizer in self.optimizers:  # AdamW's own lazy initialisation, done up front
            for p in optimizer.param_groups[0]["params"]:
                optimizer.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                      "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def free_then_backward(self: LocalEngine, loss: torch.Tensor) -> None:
        for p in self.trainable:
            p.grad = None
        backward(self, loss)

    def flat(self: LocalEngine, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        total = sum(p.numel() for p in self.trainable)
        buffers = {name: torch.zeros(total) for name in ("grad", "exp_avg", "exp_avg_sq")}
        self.flat_grad, self.grad_views, offset = buffers["grad"], [], 0
        for p in self.trainable:  # the weights stay where they are: only the rest is one buffer each
            views = {k: b[offset: offset + p.numel()].view_as(p) for k, b in buffers.items()}
            optimizer = next(o for o in self.optimizers if any(p is q for q in o.param_groups[0]["params"]))
            optimizer.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                  "exp_avg": views["exp_avg"], "exp_avg_sq": views["exp_avg_sq"]}
            p.register_post_accumulate_grad_hook(into_buffer(views["grad"]))
            self.grad_views.append((p, views["grad"]))
            offset += p.numel()

    def flat_step(self: LocalEngine) -> None:
        for p, view in self.grad_views:
            p.grad = view
        step(self)  # clips and steps on the views; zero_grad then drops them
        self.flat_grad.zero_()
        print(f"  fresh gradients alive at once, at most: {FRESH[1] // MIB} MiB", flush=True)
        FRESH[1] = 0

    step = LocalEngine.step
    zero_grad = torch.optim.Optimizer.zero_grad
    if variant == "flat":
        LocalEngine.__init__ = flat  # type: ignore[method-assign]
        LocalEngine.step = flat_step  # type: ignore[method-assign]
    if variant in ("moments-first", "keep-grads"):
        LocalEngine.__init__ = moments_first  # type: ignore[method-assign]
    if variant == "keep-grads":
        torch.optim.Optimizer.zero_grad = lambda self, set_to_none=True: zero_grad(self, set_to_none=False)
    if variant == "free-late":
        torch.optim.Optimizer.zero_grad = lambda self, set_to_none=True: None
        LocalEngine.backward = free_then_backward  # type: ignore[method-assign]


def patch_phases() -> None:
    """Print the resident set after each forward, backward and step, its high-water mark reset before
    each (``/proc/self/clear_refs``): the peak of that phase alone."""
    from damo.train.local_engine import LocalEngine

    def phased(name: str, fn: Any) -> Any:
        def wrapped(self: LocalEngine, *args: Any, **kwargs: Any) -> Any:
            Path("/proc/self/clear_refs").write_text("5")
            out = fn(self, *args, **kwargs)
            print(f"  {name}: {resident()}", flush=True)
            return out

        return wrapped

    LocalEngine.__call__ = phased("forward", LocalEngine.__call__)  # type: ignore[method-assign]
    LocalEngine.backward = phased("backward", LocalEngine.backward)  # type: ignore[method-assign]
    LocalEngine.step = phased("step", LocalEngine.step)  # type: ignore[method-assign]


def train(work: Path, steps: int, mmap_threshold_kib: int | None, variant: str | None, phases: bool,
          prompt_once: str, max_grad_norm: float | None) -> None:
    """Train in this (fresh) process, reporting after every optimizer step."""
    torch.set_num_threads(1)
    if mmap_threshold_kib is not None and LIBC.mallopt(M_MMAP_THRESHOLD, mmap_threshold_kib * 1024) != 1:
        raise SystemExit(f"glibc refused an mmap threshold of {mmap_threshold_kib} KiB")
    from damo.train.local_engine import LocalEngine

    if variant:
        patch_engine(variant)
    if phases:
        patch_phases()
    if prompt_once != "plan":
        train_vs_trl.force_prompt_once(prompt_once == "on")

    step, done = LocalEngine.step, []

    def reported_step(self: LocalEngine) -> None:
        step(self)
        done.append(1)
        report(len(done))

    LocalEngine.step = reported_step  # type: ignore[method-assign]
    shutil.rmtree(work / "out", ignore_errors=True)
    result = train_vs_trl.run_ours(work / "ref", work / "world" / "policy", work / "out", steps, 4,
                                   max_grad_norm)
    print(f"peak resident (VmHWM at the last step's end): {result['peak_bytes'] // MIB} MiB; step seconds "
          f"{[round(s, 2) for s in result['step_seconds']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2048", help="a Llama width (8 layers), or tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--mmap-threshold-kib", type=int, default=None)
    parser.add_argument("--variant", choices=["moments-first", "keep-grads", "free-late", "flat"])
    parser.add_argument("--phases", action="store_true", help="the resident peak of each phase")
    parser.add_argument("--prompt-once", choices=["plan", "on", "off"], default="plan",
                        help="run each pair's prompt once (on), full sequences (off), or as the layout plans")
    parser.add_argument("--max-grad-norm", default=str(train_vs_trl.CLIP), help="a number, or none")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:  # the child: its peak is training's alone, not the world build's
        train(args.work, args.steps, args.mmap_threshold_kib, args.variant, args.phases, args.prompt_once,
              train_vs_trl.grad_norm(args.max_grad_norm))
        return
    work = Path(tempfile.mkdtemp(prefix="damo-heap-"))
    try:
        train_vs_trl.prepare(work, args.size, 4)
        kib = args.mmap_threshold_kib
        extra = ([] if kib is None else ["--mmap-threshold-kib", str(kib)]) + (
            ["--variant", args.variant] if args.variant else []) + (["--phases"] if args.phases else []) + [
            "--prompt-once", args.prompt_once, "--max-grad-norm", args.max_grad_norm]
        subprocess.run([sys.executable, __file__, "--work", str(work), "--steps", str(args.steps), *extra],
                       check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
