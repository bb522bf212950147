"""Hub ids resolve offline through the real huggingface_hub client, from a cache laid out as it lays
one out; the commit a pin resolved to is reported; what is not cached fails with the id named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from damo.config import DamoConfig, HubConfig, ScoreConfig
from damo.hardness.clip import ClipLoadError, load_clip
from damo.hub import HubRef, parse_hub_id, snapshot_provenance
from damo.models import ModelError, load_model, model_provenance, resolve_model
from tests.unit.hardness.conftest import build_tiny_clip, make_clip_folder
from tests.unit.hardness.test_clip import same_weights
from tests.unit.hub.layout import save_in_hub_cache
from tests.unit.train.tiny import build_tiny_llava

ROOT = Path(__file__).resolve().parents[3]
REPO = "damo-test/tiny-llava"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A hub cache with two commits of the tiny LLaVA: ``main`` → the second, tag ``v1`` → the first."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    first = save_in_hub_cache(build_tiny_llava(root / "m1", seed=1), cache, REPO, refs=("v1",))
    second = save_in_hub_cache(build_tiny_llava(root / "m2", seed=2), cache, REPO, refs=("main",))
    return cache, {"v1": first, "main": second}


@pytest.mark.parametrize(("text", "expected"), [
    ("llava-hf/llava-1.5-7b-hf", HubRef("llava-hf/llava-1.5-7b-hf")),
    ("llava-hf/llava-1.5-7b-hf@v1.0", HubRef("llava-hf/llava-1.5-7b-hf", "v1.0")),
    ("org/name@refs/pr/3", HubRef("org/name", "refs/pr/3")),
    ("/abs/folder", None), ("./rel/folder", None), ("s3://bucket/key", None),
    ("models:/damo@champion", None), ("a/b/c", None), ("just-a-name", None),
])
def test_hub_ids_are_told_from_paths_and_uris(text: str, expected: HubRef | None) -> None:
    assert parse_hub_id(text) == expected


def test_unpinned_id_resolves_main_offline_to_its_snapshot(hub_cache) -> None:
    cache, commits = hub_cache
    folder = resolve_model(REPO, DamoConfig(hub=HubConfig(cache_dir=str(cache), offline=True)))
    assert folder == cache / "models--damo-test--tiny-llava" / "snapshots" / commits["main"]
    assert model_provenance(REPO, folder) == {"model": REPO, "hub_repo": REPO, "hub_commit": commits["main"]}
    assert load_model(folder, "fp32").config.model_type == "llava"


@pytest.mark.parametrize("pin", ["v1", "commit"])
def test_a_pinned_revision_resolves_to_its_commit(hub_cache, pin: str) -> None:
    cache, commits = hub_cache
    revision = commits["v1"] if pin == "commit" else "v1"
    offline = DamoConfig(hub=HubConfig(cache_dir=str(cache), offline=True))
    folder = resolve_model(f"{REPO}@{revision}", offline)
    assert snapshot_provenance(folder)["hub_commit"] == commits["v1"]
    first, second = (load_model(f, "fp32") for f in (folder, resolve_model(
        REPO, DamoConfig(hub=HubConfig(cache_dir=str(cache), offline=True)))))
    assert not torch.equal(first.lm_head.weight, second.lm_head.weight), "v1 and main are different models"


def test_an_uncached_revision_fails_offline_naming_it(hub_cache) -> None:
    cache, _ = hub_cache
    with pytest.raises(ModelError, match=f"no local folder, and as a Hub id: hub model {REPO}@v2: offline: "
                                         f"revision not found in {cache}"):
        resolve_model(f"{REPO}@v2", DamoConfig(hub=HubConfig(cache_dir=str(cache), offline=True)))
    with pytest.raises(ModelError, match="other/model"):
        resolve_model("other/model", DamoConfig(hub=HubConfig(cache_dir=str(cache), offline=True)))


def test_what_is_neither_path_uri_nor_hub_id_is_refused() -> None:
    with pytest.raises(ModelError, match="not a folder, an s3:// URI, a models:/ URI or a Hub id"):
        resolve_model("/no/such/folder")


def test_hf_home_and_hf_hub_offline_from_the_environment_are_honoured(hub_cache, tmp_path: Path) -> None:
    """No cache_dir and no offline in the config: the client's own HF_HOME and HF_HUB_OFFLINE decide."""
    cache, commits = hub_cache
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "hub").symlink_to(cache)
    code = ("import json; from damo.models import resolve_model, model_provenance; "
            f"f = resolve_model({REPO!r}); print(json.dumps(model_provenance({REPO!r}, f)))")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["hub_commit"] == commits["main"]


def test_clip_from_the_hub_cache_with_its_commit(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    commit = save_in_hub_cache(make_clip_folder(tmp_path / "clip"), cache, "damo-test/tiny-clip")
    cfg = ScoreConfig(clip_model="hf-hub:damo-test/tiny-clip@main", clip_pretrained=None, precision="fp32")
    clip = load_clip(cfg, HubConfig(cache_dir=str(cache), offline=True))
    assert same_weights(clip.model, build_tiny_clip())
    assert clip.provenance["hub_commit"] == commit and clip.provenance["hub_repo"] == "damo-test/tiny-clip"
    with pytest.raises(ClipLoadError, match="clip_pretrained to null"):
        load_clip(cfg.model_copy(update={"clip_pretrained": "openai"}), HubConfig(cache_dir=str(cache)))
    with pytest.raises(ClipLoadError, match="damo-test/tiny-clip@v9: offline: revision not found"):
        load_clip(cfg.model_copy(update={"clip_model": "hf-hub:damo-test/tiny-clip@v9"}),
                  HubConfig(cache_dir=str(cache), offline=True))
