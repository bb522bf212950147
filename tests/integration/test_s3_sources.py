"""Sources on a real object store (the stack's SeaweedFS): a missing prefix is named; the scoring
CLIP loads from an s3:// folder and from an s3:// checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from damo import storage
from damo.config import DamoConfig, IngestConfig, ScoreConfig
from damo.hardness.clip import load_clip
from damo.ingest import IngestError, ingest
from damo.stack import StackEnv
from tests.unit.hardness.conftest import MODEL_CFG, build_tiny_clip, make_clip_folder
from tests.unit.hardness.test_clip import same_weights

pytestmark = pytest.mark.integration


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    client = storage.s3_client()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{f.relative_to(folder).as_posix()}",
                              Body=f.read_bytes())


def test_missing_s3_prefix_fails_naming_it(stack_environ: StackEnv, stack_config: DamoConfig,
                                           tmp_path: Path) -> None:
    uri = f"s3://{stack_config.stack.bucket}/no-such-prefix/raw"
    with pytest.raises(IngestError, match="no-such-prefix/raw"):
        ingest(uri, tmp_path / "out", IngestConfig())


def test_clip_folder_and_checkpoint_from_s3(stack_environ: StackEnv, stack_config: DamoConfig,
                                            tmp_path: Path) -> None:
    bucket = stack_config.stack.bucket
    folder = make_clip_folder(tmp_path / "clip")
    _upload(folder, bucket, "clip-test/folder")
    clip = load_clip(ScoreConfig(clip_model=f"s3://{bucket}/clip-test/folder", clip_pretrained=None,
                                 precision="fp32"))
    assert same_weights(clip.model, build_tiny_clip())

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "DamoTinyS3.json").write_text(json.dumps(MODEL_CFG))
    open_clip.add_model_config(tmp_path / "cfg")
    reference = build_tiny_clip(seed=3)
    torch.save(reference.state_dict(), tmp_path / "weights.pt")
    storage.s3_client().upload_file(str(tmp_path / "weights.pt"), bucket, "clip-test/ckpt/weights.pt")
    remote = load_clip(ScoreConfig(clip_model="DamoTinyS3",
                                   clip_pretrained=f"s3://{bucket}/clip-test/ckpt/weights.pt",
                                   precision="fp32"))
    assert same_weights(remote.model, reference)
