"""Model URIs resolve to a local HF folder: a folder, an s3:// prefix (a models:/ registry URI:
tests/integration/test_registry.py, against a real MLflow server and object store)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from damo import models
from damo.config import load_config
from damo.models import ModelError, resolve_model


def test_a_local_folder_is_used_in_place(tiny_llava: Path) -> None:
    assert resolve_model(str(tiny_llava), load_config(None)) == tiny_llava


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope"):
        resolve_model(str(tmp_path / "nope"), load_config(None))


def test_registry_uri_goes_through_the_verified_registry_fetch(tiny_llava: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """models:/ is fetched by damo.registry.fetch_verified (checked against the hash recorded in MLflow;
    tests/integration/test_hostile_registry.py runs it for real) into a fresh folder under the cache."""
    import damo.registry

    calls = []

    def fake_fetch(client: object, uri: str, dest: Path) -> tuple[object, int]:
        calls.append(uri)
        assert not any(dest.iterdir())  # an empty folder: nothing unlisted can be in it
        shutil.copytree(tiny_llava, dest / "hf")
        return object(), 1

    monkeypatch.setattr(damo.registry, "fetch_verified", fake_fetch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never contacted: fetch is faked
    found = resolve_model("models:/damo-tiny@champion", load_config(None), cache_dir=tmp_path)
    assert calls == ["models:/damo-tiny@champion"]
    assert found.parent.parent == tmp_path and (found / "config.json").is_file()


def test_s3_prefix_goes_through_damo_storage(tiny_llava: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import damo.storage

    def fake_download(uri: str, dest: Path) -> Path:
        assert uri == "s3://bucket/models/tiny"
        shutil.copytree(tiny_llava, Path(dest) / "tiny")
        return Path(dest)

    monkeypatch.setattr(damo.storage, "download", fake_download)
    found = resolve_model("s3://bucket/models/tiny", load_config(None), cache_dir=tmp_path)
    assert found == tmp_path / "tiny"


def test_the_vision_tower_is_frozen_by_default(tiny_llava: Path) -> None:
    policy = models.load_policy(tiny_llava, "fp32")
    assert not any(p.requires_grad for p in models.vision_tower(policy).parameters())
    assert all(p.requires_grad for n, p in policy.named_parameters() if "multi_modal_projector" in n)
