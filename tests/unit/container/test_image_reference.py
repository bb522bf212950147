"""Which image a compile names: pipeline.image, else the one `damo image build` recorded; pinned by
digest or refused (unless development allows it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo.config import ConfigError, load_config
from damo.container.reference import is_pinned, record, recorded, resolve_image, with_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("reference", "pinned"), [
    (f"127.0.0.1:5000/damo@{DIGEST}", True),
    (f"ghcr.io/org/damo:0.1.0@{DIGEST}", True),
    ("ghcr.io/org/damo:0.1.0", False),
    ("damo-local/damo:0123456789abcdef", False),
    ("ghcr.io/org/damo@sha256:abc", False),  # too short
    (f"ghcr.io/org/damo@{DIGEST.upper()}", False),
    (f"@{DIGEST}", False),
])
def test_pinned_means_a_full_sha256_digest(reference: str, pinned: bool) -> None:
    assert is_pinned(reference) is pinned


def test_the_configured_image_wins_over_the_recorded_one(tmp_path: Path) -> None:
    record(tmp_path / "image.json", f"127.0.0.1:5000/damo@{DIGEST}")
    configured = f"ghcr.io/org/damo@sha256:{'cd' * 32}"
    config = load_config("tiny", [f"pipeline.image={configured}",
                                  f"pipeline.image_record={tmp_path}/image.json"])
    assert resolve_image(config) == configured


def test_the_recorded_image_is_used_when_none_is_configured(tmp_path: Path) -> None:
    path = record(tmp_path / "sub" / "image.json", f"127.0.0.1:5000/damo@{DIGEST}", local="damo-local/damo:x")
    entry = json.loads(path.read_text())
    assert entry["pinned"] is True and entry["local"] == "damo-local/damo:x"
    config = load_config("tiny", [f"pipeline.image_record={path}"])
    resolved = with_image(config)
    assert resolved.pipeline.image == f"127.0.0.1:5000/damo@{DIGEST}"
    assert config.pipeline.image is None  # the caller's config is left alone


def test_an_unpinned_image_is_refused_unless_development_allows_it(tmp_path: Path) -> None:
    record(tmp_path / "image.json", "damo-local/damo:0123")
    config = load_config("tiny", [f"pipeline.image_record={tmp_path}/image.json"])
    with pytest.raises(ConfigError, match=r"recorded in .*image.json 'damo-local/damo:0123' is not pinned"):
        resolve_image(config)
    assert resolve_image(config, allow_unpinned=True) == "damo-local/damo:0123"


def test_no_image_at_all_says_how_to_build_one(tmp_path: Path) -> None:
    config = load_config("tiny", [f"pipeline.image_record={tmp_path}/absent.json"])
    with pytest.raises(ConfigError, match=r"no pipeline image: .*damo image build --push REGISTRY"):
        resolve_image(config)


@pytest.mark.parametrize("text", ["not json", "{}", '{"image": ""}', '{"image": 3}'])
def test_a_damaged_record_is_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "image.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="image.json"):
        recorded(path)
