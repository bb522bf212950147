"""The build context holds exactly what goes into the image, and its hash (the cache key) changes
with any of it and with the build arguments — not with bytecode or caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.container.build import (
    CA_FILE,
    NLTK_CONTEXT,
    SOURCES,
    WORDNET_SHA256,
    BuildOptions,
    ImageBuildError,
    assemble_context,
    context_hash,
)

ROOT = Path(__file__).resolve().parents[3]


def checkout(tmp: Path) -> Path:
    src = tmp / "src"
    for rel in SOURCES:
        if rel in ("damo", "components", "pipelines", "configs"):
            (src / rel).mkdir(parents=True)
            (src / rel / "__init__.py").write_text(f"# {rel}\n")
        else:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(f"{rel}\n")
    (src / WORDNET_SHA256).parent.mkdir(parents=True, exist_ok=True)
    (src / WORDNET_SHA256).write_text("checksums\n")
    return src


def built_hash(tmp: Path, src: Path, name: str, build_args: dict[str, str] | None = None,
               ca: Path | None = None) -> str:
    ctx = tmp / name
    ctx.mkdir()
    assemble_context(BuildOptions(source=src, record=tmp / "image.json", ca_bundle=ca), ctx)
    return context_hash(ctx, build_args or {})


def test_the_context_is_the_dockerfiles_inputs_and_nothing_else(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    assemble_context(BuildOptions(source=ROOT, record=tmp_path / "image.json"), ctx)
    assert sorted(p.name for p in ctx.iterdir()) == sorted([*SOURCES, CA_FILE, NLTK_CONTEXT])
    assert (ctx / NLTK_CONTEXT / "corpora" / "wordnet" / "lexnames").is_file()  # the tests' WordNet
    assert (ctx / CA_FILE).read_bytes() == b""
    assert not list(ctx.rglob("__pycache__")) and not list(ctx.rglob("*.pyc"))
    copied = {line.split()[1].rstrip("/") for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ")}
    assert copied <= {*SOURCES, CA_FILE, NLTK_CONTEXT}


def test_an_unchanged_tree_hashes_the_same_and_any_change_differs(tmp_path: Path) -> None:
    src = checkout(tmp_path)
    first = built_hash(tmp_path, src, "a")
    (src / "damo" / "__pycache__").mkdir()
    (src / "damo" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert built_hash(tmp_path, src, "b") == first  # bytecode is not an input
    assert built_hash(tmp_path, src, "c", {"BASE": "local/debian"}) != first
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert built_hash(tmp_path, src, "d", ca=ca) != first
    (src / "damo" / "__init__.py").write_text("# changed\n")
    assert built_hash(tmp_path, src, "e") != first


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    src = checkout(tmp_path)
    with pytest.raises(ImageBuildError, match="--ca-bundle .*nope.crt: no such file"):
        built_hash(tmp_path, src, "a", ca=tmp_path / "nope.crt")
    (src / "Dockerfile").unlink()
    with pytest.raises(ImageBuildError, match="Dockerfile is missing: run `damo image build` from a damo"):
        built_hash(tmp_path, src, "b")
