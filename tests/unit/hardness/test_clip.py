"""Loading the scoring CLIP: an hf-hub-layout folder, a name + checkpoint file (s3://: integration tier)."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from damo.config import ScoreConfig
from damo.hardness.clip import ClipLoadError, load_clip
from tests.unit.hardness.conftest import CONTEXT, MODEL_CFG, build_tiny_clip


def same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> bool:
    ours, theirs = model.state_dict(), reference.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k].float(), theirs[k].float()) for k in ours)


def test_folder_in_hf_hub_layout(clip_folder: Path):
    clip = load_clip(ScoreConfig(clip_model=str(clip_folder), clip_pretrained=None, precision="fp32"))
    assert clip.context_length == CONTEXT and clip.dtype == torch.float32
    assert same_weights(clip.model, build_tiny_clip())
    assert not clip.model.training
    assert clip.provenance["clip_model"] == str(clip_folder) and len(clip.provenance["weights_sha256"]) == 64


@pytest.fixture
def registered_tiny_name(tmp_path: Path) -> str:
    """A built-in-style model name (open_clip's config registry) for the name + checkpoint path."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "DamoTinyTest.json").write_text(json.dumps(MODEL_CFG))
    open_clip.add_model_config(tmp_path / "cfg")
    return "DamoTinyTest"


def test_name_with_checkpoint_file(registered_tiny_name: str, tmp_path: Path):
    reference = build_tiny_clip(seed=3)
    torch.save(reference.state_dict(), tmp_path / "weights.pt")
    local = load_clip(
        ScoreConfig(
            clip_model=registered_tiny_name, clip_pretrained=str(tmp_path / "weights.pt"), precision="fp32"
        )
    )
    assert same_weights(local.model, reference)


def test_errors_name_what_was_asked_for(clip_folder: Path, tmp_path: Path):
    with pytest.raises(ClipLoadError, match="set score.clip_pretrained to null"):
        load_clip(ScoreConfig(clip_model=str(clip_folder), clip_pretrained="openai"))
    with pytest.raises(ClipLoadError, match="lacks open_clip_config.json"):
        load_clip(ScoreConfig(clip_model=str(tmp_path), clip_pretrained=None))
    with pytest.raises(ClipLoadError, match="no-such-dir/clip: no such CLIP folder"):
        load_clip(ScoreConfig(clip_model=str(tmp_path / "no-such-dir" / "clip"), clip_pretrained=None))
    with pytest.raises(ClipLoadError, match="NoSuchModel-1"):
        load_clip(ScoreConfig(clip_model="NoSuchModel-1", clip_pretrained=None))
