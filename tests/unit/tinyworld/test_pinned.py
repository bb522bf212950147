"""The build's CPU kernels are pinned, so a machine that would choose other kernels builds the same world."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from damo.config import load_config
from damo.tinyworld import build
from damo.tinyworld.pinned import PINNED_KERNELS, TinyWorldBuildError, cpu_runs_pinned_kernels

# A few SFT and CLIP steps: the trained weights are where kernel paths round differently.
TRAINED = ("tiny_world.sft_steps=20", "tiny_world.clip_steps=5", "tiny_world.num_pairs=32",
           "tiny_world.eval_images=4", "tiny_world.selection_images=4")
# What another CPU would choose: no vectorised ATen kernels, MKL's generic path, oneDNN's SSE4.1 path.
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"}
needs_avx2 = pytest.mark.skipif(not cpu_runs_pinned_kernels(), reason="pinned kernels need x86-64 AVX2+FMA")


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "report.json"}  # build time


def _build_unpinned(config_overrides: tuple[str, ...], out: Path, env: dict[str, str]) -> None:
    """The in-process build (no pins) in a fresh interpreter under ``env``: what a build would give
    on a CPU whose kernels are those of ``env``."""
    code = ("import sys; from damo.config import load_config; from damo.tinyworld.build import build_here; "
            "build_here(load_config('tiny', sys.argv[2:]), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(out), *config_overrides], env=env, check=True,
                   capture_output=True)


@needs_avx2
def test_a_cpu_choosing_other_kernels_builds_the_same_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    config = load_config("tiny", TRAINED)
    build(config, tmp_path / "here")
    # Unpinned, the other kernels give other bytes: this is what the pins are for.
    _build_unpinned(TRAINED, tmp_path / "unpinned", {**os.environ, "OMP_NUM_THREADS": "1", **OTHER_CPU})
    assert _digests(tmp_path / "unpinned") != _digests(tmp_path / "here")
    for name, value in OTHER_CPU.items():
        monkeypatch.setenv(name, value)
    build(config, tmp_path / "other")
    assert _digests(tmp_path / "other") == _digests(tmp_path / "here")
    report = json.loads((tmp_path / "other" / "report.json").read_text())
    assert report["kernels"] == PINNED_KERNELS and report["summary"]["out"] == str(tmp_path / "other")


def test_only_an_x86_64_cpu_with_avx2_and_fma_runs_the_pinned_kernels(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx avx2 fma\n")
    assert cpu_runs_pinned_kernels(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx\n")
    assert not cpu_runs_pinned_kernels(cpuinfo)
    assert not cpu_runs_pinned_kernels(tmp_path / "absent")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert not cpu_runs_pinned_kernels(cpuinfo)


def test_a_failed_build_process_is_reported_by_name(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TinyWorldBuildError, match="the build process exited"):
        build(load_config("tiny", TRAINED), blocker / "world")
