"""``build(config, out)``: the tiny world built in a child process whose CPU kernels are pinned.

Why a child process. The world's bytes depend on which CPU kernels compute them, not only on the
seed and the thread count (:data:`damo.tinyworld.build.BUILD_THREADS`). ATen's vectorised kernels,
MKL's and oneDNN's code paths are each chosen per CPU when the process first needs them, and each
path rounds differently. Measured on a quick world (60 SFT steps): forcing any one of them onto
another path in an otherwise identical build changed the bytes of the policy, CLIP or data. So two
CPUs that choose different paths build different worlds: the canonical world of an earlier session
(``benchmarks/tiny_effect.md``) did not rebuild bit for bit on a later, AMD AVX2, box.

The choice is read from the environment once per process, before the first kernel runs, so it cannot
be made inside a process that has already used torch. The build therefore runs in a fresh
interpreter with :data:`PINNED_KERNELS` set: the AVX2 paths, which every x86-64 CPU with AVX2 and
FMA (2013 on) runs, MKL in its strict conditional-reproducibility mode. On one machine the world no
longer depends on the caller's environment (tested). Across CPU vendors it still differs: an Intel
Xeon (AVX-512) box built world ``8af8f0ab…`` where an AMD EPYC (AVX2) box had built ``603a16f4…``,
same code, pins and pinned torch (the other packages' versions were not recorded there; MKL documents
its strict mode for Intel processors). So results on the tiny world must hold across worlds, not rely
on one world's bytes. Elsewhere (another architecture, an older CPU) the build runs unpinned, says so
in the log and in ``report.json`` (``kernels``), and its bytes are that machine's own.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import damo
from damo.config import DamoConfig, load_config
from damo.errors import DamoError
from damo.tinyworld.build import BUILD_THREADS, build_here, check_empty
from damo.tinyworld.clip import check_answers_fit
from damo.tinyworld.pairs import pair_rows

log = logging.getLogger(__name__)
PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CPU_FLAGS_NEEDED = ("avx2", "fma")  # what the pinned paths execute; without them they would crash
STDERR_FD = 2  # the file descriptor itself: sys.stderr may be a captured stream without one


class TinyWorldBuildError(DamoError):
    """The child process that builds the tiny world failed."""


def cpu_runs_pinned_kernels(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU can run :data:`PINNED_KERNELS`: x86-64 with AVX2 and FMA (read from the
    CPU's flags, not from torch, whose own answer follows any ``ATEN_CPU_CAPABILITY`` already set)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return False
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(CPU_FLAGS_NEEDED) <= set(line.partition(":")[2].split())
    return False


def child_environment(pinned: bool) -> dict[str, str]:
    """The caller's environment, plus the pins (when ``pinned``), the build's thread count, and this
    checkout of ``damo`` first on the path, so the child runs the same code as the caller."""
    env = dict(os.environ)
    if pinned:
        env.update(PINNED_KERNELS)
    env["OMP_NUM_THREADS"] = str(BUILD_THREADS)
    source = str(Path(damo.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


def build(config: DamoConfig, out: str | Path) -> dict[str, Any]:
    """Build the tiny world into ``out`` (absent or empty) in a child process with pinned kernels;
    returns the summary :func:`damo.tinyworld.build.build_here` returns (the pins are in report.json)."""
    check_empty(Path(out))  # refused here, by name, rather than as a failed child
    check_answers_fit(config.tiny_world, [row for _, row in pair_rows(config.tiny_world, config.seed)])
    pinned = cpu_runs_pinned_kernels()
    if not pinned:
        log.warning("this CPU (%s) cannot run the pinned AVX2 kernels: the tiny world is built with its "
                    "own, and its bytes will differ from an x86-64 AVX2 machine's", platform.machine())
    # The config travels as JSON text, the way a KFP component receives it (load_config(text=...)).
    # The child's stdout goes to our stderr: a step's stdout carries only its JSON result.
    done = subprocess.run([sys.executable, "-m", "damo.tinyworld.pinned", config.model_dump_json(), str(out)],
                          env=child_environment(pinned), stdout=STDERR_FD, check=False)
    if done.returncode != 0:
        raise TinyWorldBuildError(f"building the tiny world into {out} failed: the build process exited "
                                  f"{done.returncode} (its log is above)")
    result: dict[str, Any] = json.loads((Path(out) / "report.json").read_text())["summary"]
    return result


def main(argv: list[str]) -> None:
    """The child: ``python -m damo.tinyworld.pinned CONFIG_JSON_TEXT OUT``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config_text, out = argv
    build_here(load_config(text=config_text), out,
               kernels={k: os.environ[k] for k in PINNED_KERNELS if k in os.environ})


if __name__ == "__main__":
    main(sys.argv[1:])
