"""An in-memory stand-in for the few boto3 S3 client calls damo.storage makes (unit tier: no server).

The real object store (SeaweedFS) is exercised by the integration tier.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


class FakeS3:
    def __init__(self, objects: dict[str, bytes] | None = None, fail_with: str | None = None):
        self.objects = dict(objects or {})  # "bucket/key" → bytes
        self.fail_with = fail_with  # an S3 error code every call raises (e.g. InvalidAccessKeyId)
        self.calls: list[str] = []

    def put_tree(self, bucket: str, prefix: str, folder: Path) -> None:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                self.objects[f"{bucket}/{prefix}/{f.relative_to(folder).as_posix()}"] = f.read_bytes()

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if self.fail_with:
            raise ClientError({"Error": {"Code": self.fail_with, "Message": "denied"}}, op)

    def get_paginator(self, name: str) -> FakeS3:
        return self

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        self._check("ListObjectsV2")
        keys = sorted(k.split("/", 1)[1] for k in self.objects if k.startswith(f"{Bucket}/{Prefix}"))
        return [{"Contents": [{"Key": k} for k in keys]}] if keys else [{}]

    def _get(self, bucket: str, key: str, op: str) -> bytes:
        self._check(op)
        if f"{bucket}/{key}" not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no such key"}}, op)
        return self.objects[f"{bucket}/{key}"]

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self._get(Bucket, Key, "GetObject"))}

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        Path(filename).write_bytes(self._get(bucket, key, "GetObject"))
