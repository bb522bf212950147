"""The per-machine world cache: built once, keyed by config, safe when two processes race."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo.config import DamoConfig, load_config
from damo.tinyworld import cache


def _fake_build(calls: list[Path]):  # type: ignore[no-untyped-def]
    def build(config: DamoConfig, out: Path) -> dict[str, str]:
        calls.append(out)
        (out / "world.json").write_text(json.dumps({"seed": config.seed}))
        return {"out": str(out)}

    return build


def test_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(cache, "build", _fake_build(calls))
    config = load_config("tiny")
    first = cache.cached_world(config, tmp_path)
    second = cache.cached_world(config, tmp_path)
    assert first == second and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary folder left behind


def test_key_follows_config_and_seed() -> None:
    base = cache.world_key(load_config("tiny"))
    assert base == cache.world_key(load_config("tiny"))
    assert base != cache.world_key(load_config("tiny", ["seed=1"]))
    assert base != cache.world_key(load_config("tiny", ["tiny_world.sft_steps=1"]))


def test_losing_a_race_uses_the_winners_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config("tiny")
    final = tmp_path / cache.world_key(config)[:20]

    def racing_build(config: DamoConfig, out: Path) -> dict[str, str]:
        # Another process finishes first while this one is still building.
        final.mkdir()
        (final / "world.json").write_text('{"winner": true}')
        (out / "world.json").write_text('{"winner": false}')
        return {}

    monkeypatch.setattr(cache, "build", racing_build)
    assert cache.cached_world(config, tmp_path) == final
    assert json.loads((final / "world.json").read_text()) == {"winner": True}
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_a_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_build(config: DamoConfig, out: Path) -> dict[str, str]:
        raise OSError("disk full")

    monkeypatch.setattr(cache, "build", failing_build)
    with pytest.raises(OSError, match="disk full"):
        cache.cached_world(load_config("tiny"), tmp_path)
    assert list(tmp_path.iterdir()) == []
