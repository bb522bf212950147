"""Where damo's one-process training memory sits between steps: live tensors, glibc's heap, the peak.

Usage::

    python benchmarks/train_heap_probe.py [--size 2048] [--steps 6] [--mmap-threshold-kib N]
                                          [--variant moments-first|keep-grads|free-late]

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
the optimizer step. Linux with glibc only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import train_vs_trl

MIB = 2**20
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

    zero_grad = torch.optim.Optimizer.zero_grad
    if variant in ("moments-first", "keep-grads"):
        LocalEngine.__init__ = moments_first  # type: ignore[method-assign]
    if variant == "keep-grads":
        torch.optim.Optimizer.zero_grad = lambda self, set_to_none=True: zero_grad(self, set_to_none=False)
    if variant == "free-late":
        torch.optim.Optimizer.zero_grad = lambda self, set_to_none=True: None
        LocalEngine.backward = free_then_backward  # type: ignore[method-assign]


def train(work: Path, steps: int, mmap_threshold_kib: int | None, variant: str | None) -> None:
    """Train in this (fresh) process, reporting after every optimizer step."""
    torch.set_num_threads(1)
    if mmap_threshold_kib is not None and LIBC.mallopt(M_MMAP_THRESHOLD, mmap_threshold_kib * 1024) != 1:
        raise SystemExit(f"glibc refused an mmap threshold of {mmap_threshold_kib} KiB")
    from damo.train.local_engine import LocalEngine

    if variant:
        patch_engine(variant)

    step, done = LocalEngine.step, []

    def reported_step(self: LocalEngine) -> None:
        step(self)
        done.append(1)
        report(len(done))

    LocalEngine.step = reported_step  # type: ignore[method-assign]
    shutil.rmtree(work / "out", ignore_errors=True)
    result = train_vs_trl.run_ours(work / "ref", work / "world" / "policy", work / "out", steps, 4,
                                   train_vs_trl.CLIP)
    print(f"peak resident (VmHWM at the last step's end): {result['peak_bytes'] // MIB} MiB; step seconds "
          f"{[round(s, 2) for s in result['step_seconds']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2048", help="a Llama width (8 layers), or tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--mmap-threshold-kib", type=int, default=None)
    parser.add_argument("--variant", choices=["moments-first", "keep-grads", "free-late"])
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:  # the child: its peak is training's alone, not the world build's
        train(args.work, args.steps, args.mmap_threshold_kib, args.variant)
        return
    work = Path(tempfile.mkdtemp(prefix="damo-heap-"))
    try:
        train_vs_trl.prepare(work, args.size, 4)
        kib = args.mmap_threshold_kib
        extra = ([] if kib is None else ["--mmap-threshold-kib", str(kib)]) + (
            ["--variant", args.variant] if args.variant else [])
        subprocess.run([sys.executable, __file__, "--work", str(work), "--steps", str(args.steps), *extra],
                       check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
