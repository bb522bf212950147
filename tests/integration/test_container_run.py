"""The container tier: the pipeline image built with the local Docker engine (from a Debian base
made from Debian packages where no registry is reachable), pushed to a registry on 127.0.0.1,
pinned by digest, and the whole tiny pipeline run with every task in it through kfp.local's
DockerRunner on the host network; `damo pull` then loads the registered model on the host.

Whatever the image lacks (a package, a file, a writable folder for its non-root user, a cache, an
environment variable) fails here. ``scripts/container-env.sh`` installs and starts the engine and
the registry (root needed) and stops only what it started. ``DAMO_CONTAINER_BASE`` names another
base (e.g. the production CUDA base where a registry is reachable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from damo.cli import main
from damo.config import DamoConfig
from damo.container.reference import is_pinned
from damo.stack import StackEnv

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENV_SCRIPT = ROOT / "scripts" / "container-env.sh"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # pip in the image trusts what the host trusts
QUICK_WORLD = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
               "tiny_world.eval_images=8", "tiny_world.selection_images=8",
               "train.select.floor={}")  # an untrained policy reaches no well-formedness floor
SETUP_TIMEOUT_S, BUILD_TIMEOUT_S = 900, 3600


def script(action: str) -> str:
    """Run scripts/container-env.sh ACTION; its last stdout line (up: the registry, base: the image)."""
    done = subprocess.run(["bash", str(ENV_SCRIPT), action], stdout=subprocess.PIPE, text=True,
                          check=True, timeout=SETUP_TIMEOUT_S)
    return (done.stdout.strip().splitlines() or [""])[-1]


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    address = script("up")
    try:
        yield address
    finally:
        script("down")


def build(registry: str, record: Path) -> dict[str, Any]:
    base = os.environ.get("DAMO_CONTAINER_BASE") or script("base")
    ca = ["--ca-bundle", str(HOST_CA)] if HOST_CA.is_file() else []
    done = subprocess.run(
        [sys.executable, "-m", "damo", "image", "build", "--push", registry, "--base", base, *ca,
         "--source", str(ROOT), "--set", f"pipeline.image_record={record}"],
        stdout=subprocess.PIPE, text=True, check=True, timeout=BUILD_TIMEOUT_S, cwd=ROOT)
    (line,) = done.stdout.strip().splitlines()
    return dict(json.loads(line))


@pytest.fixture(scope="module")
def image(registry: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    record = tmp_path_factory.mktemp("image") / "image.json"
    start = time.monotonic()
    first = build(registry, record)
    sys.stderr.write(f"\ncontainer tier: build {time.monotonic() - start:.0f} s "
                     f"(cached: {first['cached']}), image {first['size_bytes'] / 1e9:.2f} GB\n")
    return {**first, "record": record}


def test_the_built_image_is_pushed_pinned_recorded_and_not_rebuilt(image: dict[str, Any],
                                                                   registry: str) -> None:
    assert image["image"].startswith(f"{registry}/damo@sha256:") and is_pinned(image["image"])
    assert json.loads(image["record"].read_text())["image"] == image["image"]
    again = build(registry, image["record"])
    assert again["cached"] is True and again["image"] == image["image"], "an unchanged tree is not rebuilt"


def test_the_tiny_pipeline_runs_in_the_image_and_pull_loads_the_model(
        image: dict[str, Any], stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "runs"
    sets = [*QUICK_WORLD, f"pipeline.image_record={image['record']}",
            f"stack.state_dir={stack_config.stack.state_dir}",
            f"tracking.experiment={stack_config.tracking.experiment}"]
    flags = [arg for s in sets for arg in ("--set", s)]
    start = time.monotonic()
    code = main(["run", "--runner", "docker", "--config", "tiny", "--output-dir", str(out), *flags])
    seconds = time.monotonic() - start
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    (line,) = captured.out.strip().splitlines()
    summary = json.loads(line)
    with capsys.disabled():
        sys.stderr.write(f"\ncontainer tier: containerised tiny run {seconds:.0f} s\n")

    assert summary["model_uri"].startswith("models:/damo-tiny/") and summary["metrics"]
    assert captured.err.count(f"Found image {image['image']!r}") >= 8, "every task ran in the pinned image"
    run_dir = Path(summary["output_dir"])
    assert (out / "tiny-world" / "world.json").is_file(), "the tiny world was built inside the root"
    for step in ("ingest", "score", "reference", "train", "evaluate", "register"):
        written = run_dir / step / "executor_output.json"
        assert written.is_file(), step
        if os.getuid() == 0:  # a root host runs the containers as the image's non-root user
            assert written.stat().st_uid != 0, f"{step} ran as root"

    pulled = tmp_path / "pulled"
    assert main(["pull", summary["model_uri"], "--out", str(pulled), *flags]) == 0
    model = AutoModelForImageTextToText.from_pretrained(pulled)
    assert model.config.model_type == "llava"
