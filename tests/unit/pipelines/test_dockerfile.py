"""The Dockerfiles, checked without a Docker engine: bases are build arguments defaulting to pinned
production bases, one stage per file (the legacy builder builds every stage), the package installed,
DeepSpeed ops compiled at build time, a non-root final user, no secret baked in, and no image named
in the source (the image is configuration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FILES = {"pipeline": ROOT / "Dockerfile", "mlflow": ROOT / "Dockerfile.mlflow"}


def instructions(name: str) -> list[str]:
    text = re.sub(r"\\\n", " ", FILES[name].read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


INSTRUCTIONS = instructions("pipeline")


def stages() -> list[list[str]]:
    """Instructions grouped by FROM, over both files."""
    out: list[list[str]] = []
    for name in FILES:
        for line in instructions(name):
            if line.upper().startswith("FROM "):
                out.append([])
            if out:
                out[-1].append(line)
    return out


@pytest.mark.parametrize("name", sorted(FILES))
def test_one_stage_whose_base_is_an_argument_defaulting_to_a_pinned_image(name: str) -> None:
    lines = instructions(name)
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    assert froms == [lines[1]] and re.match(r"FROM \$\{BASE\}( AS \S+)?$", froms[0]), froms
    assert re.match(r"ARG BASE=\S+:\S+@sha256:[0-9a-f]{64}$", lines[0]), lines[0]
    if name == "pipeline":
        assert "nvidia/cuda:" in lines[0], "the production pipeline image has a CUDA base"


def test_final_stage_installs_the_package_and_prebuilds_deepspeed_ops() -> None:
    final = " ".join(INSTRUCTIONS)
    assert "COPY damo ./damo" in final and "COPY components ./components" in final
    assert "COPY pipelines ./pipelines" in final and "COPY configs ./configs" in final
    assert "pip install -r /tmp/requirements.txt" in final  # dependencies: a layer of their own
    assert "pip install --no-deps . && pip check" in final
    assert re.search(r"DS_BUILD_\w+=1 .*pip install --no-build-isolation \"deepspeed==", final)
    assert 'torch==2.14.1' in final  # the CUDA build matching the base's CUDA 13.0 (cu130)
    # the same WordNet bytes as the tests (copied from the checkout, checked again), via DAMO_NLTK_DATA
    assert "COPY nltk_data /opt/damo/nltk_data" in final and "sha256sum --quiet -c" in final
    assert "ENV DAMO_NLTK_DATA=/opt/damo/nltk_data" in final


def test_every_stage_ends_as_a_non_root_user() -> None:
    for stage in stages():
        users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
        assert users, stage[0]
        uid = users[-1].split(":")[0]
        assert uid not in ("root", "0"), stage[0]


def test_no_secret_is_baked_in() -> None:
    forbidden = re.compile(r"(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|PASSWORD|TOKEN|SECRET_KEY)\s*=",
                           re.IGNORECASE)
    for line in INSTRUCTIONS:
        if line.upper().startswith(("ENV ", "ARG ")):
            assert not forbidden.search(line), line
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".damo", "*.env", "tests"} <= set(ignored)


def test_no_image_is_named_in_the_source() -> None:
    """The image is configuration: no registry reference or digest lives in components/ or pipelines/
    (the golden pipeline's example reference aside)."""
    for folder in ("components", "pipelines"):
        for path in (ROOT / folder).glob("*.py"):
            if path.name != "golden.py":
                assert not re.search(r"@sha256:|ghcr\.io|docker\.io", path.read_text()), path


def test_the_image_user_can_write_its_home_and_caches_under_any_uid_of_group_0() -> None:
    final = " ".join(INSTRUCTIONS)
    assert "USER 10001:0" in INSTRUCTIONS and "--gid 0" in final
    assert re.search(r"chown -R 10001:0 [^&]*/home/damo", final)
    assert re.search(r"chmod -R g=u [^&]*/home/damo", final)
    for cache in ("HF_HOME=/home/damo/", "TORCH_EXTENSIONS_DIR=/home/damo/"):
        assert cache in final
