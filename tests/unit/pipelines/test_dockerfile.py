"""The Dockerfile, checked without a Docker engine: pinned bases, the package installed, DeepSpeed ops
compiled at build time, a non-root final user, no secret baked in, and the components' image named
in one place."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.strip().startswith("#")]


def stages() -> list[list[str]]:
    """Instructions grouped by FROM."""
    out: list[list[str]] = []
    for line in INSTRUCTIONS:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_every_base_image_is_pinned_by_digest() -> None:
    froms = [s[0] for s in stages()]
    assert len(froms) == 3  # mlflow-server, nltk-data (WordNet files only), the pipeline image
    for line in froms:
        assert re.match(r"FROM \S+:\S+@sha256:[0-9a-f]{64}( AS \S+)?$", line), line
    assert "nvidia/cuda:" in froms[-1], "the pipeline image (the default, last stage) has a CUDA base"


def test_final_stage_installs_the_package_and_prebuilds_deepspeed_ops() -> None:
    final = " ".join(stages()[-1])
    assert "COPY damo ./damo" in final and "COPY components ./components" in final
    assert "COPY pipelines ./pipelines" in final and "COPY configs ./configs" in final
    assert "pip install . " in final or final.endswith("pip install .")
    assert re.search(r"DS_BUILD_\w+=1 .*pip install --no-build-isolation \"deepspeed==", final)
    assert 'torch==2.14.1' in final  # the CUDA build matching the base's CUDA 13.0 (cu130)
    # the same WordNet bytes as the tests (checked in the nltk-data stage), found via DAMO_NLTK_DATA
    assert "COPY --from=nltk-data /nltk_data /opt/damo/nltk_data" in final
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


def test_components_image_is_named_once() -> None:
    from components.image import IMAGE, NAME

    assert IMAGE.startswith(f"{NAME}:") and re.search(r"@sha256:[0-9a-f]{64}$", IMAGE)
    steps_source = (ROOT / "components" / "steps.py").read_text()
    assert "base_image=IMAGE" in steps_source and NAME not in steps_source
