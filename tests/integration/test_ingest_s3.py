"""Ingest from a real object store (the stack's SeaweedFS): same result as from the local folder,
and rejected credentials give a clear error naming the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo import storage
from damo.config import DamoConfig, IngestConfig
from damo.ingest import IngestError, ingest
from damo.stack import StackEnv
from tests.unit.ingest.conftest import MIXED_EXPECTED, MIXED_GOOD, make_mixed_jsonl

pytestmark = pytest.mark.integration


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    client = storage.s3_client()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{f.relative_to(folder).as_posix()}", Body=f.read_bytes()
            )


def test_ingest_from_s3_matches_local_and_counts_add_up(
    stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = make_mixed_jsonl(tmp_path).parent
    bucket = stack_config.stack.bucket
    _upload(raw, bucket, "ingest-test/raw")
    cfg = IngestConfig(image_folder="images", max_image_pixels=1_000_000)
    remote = ingest(f"s3://{bucket}/ingest-test/raw", tmp_path / "remote", cfg)
    local = ingest(str(raw), tmp_path / "local", cfg)
    assert remote["quarantined_by_reason"] == MIXED_EXPECTED and remote["kept"] == MIXED_GOOD
    assert (remote["input_rows"], remote["checksum"]) == (local["input_rows"], local["checksum"])

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + "x" * 20)
    with pytest.raises(IngestError, match=r"ingest-test/raw.*rejected the credentials"):
        ingest(f"s3://{bucket}/ingest-test/raw", tmp_path / "denied", cfg)
