"""Local paths and ``s3://bucket/key`` URIs, through one small API.

The S3 endpoint and credentials come only from the standard AWS environment variables
(``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), never from config files, so no secret is ever written with a resolved config.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.errors import DamoError

S3_PREFIX = "s3://"


class StorageError(DamoError, RuntimeError):
    """An object-store operation failed; the message names the URI and the cause."""


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith(S3_PREFIX)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(S3_PREFIX):].partition("/")
    if not bucket:
        raise StorageError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client configured only from the environment."""
    import boto3
    from botocore.config import Config

    # A fresh session: boto3's default session caches the credentials it first read, so a changed
    # environment (rotated keys, another stack) would otherwise be ignored for the process lifetime.
    session = boto3.session.Session()
    return session.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def download(uri: str, dest: str | Path) -> Path:
    """Fetch a local path (returned as is) or every object under an ``s3://`` prefix into ``dest``.

    A single object lands as ``dest/<basename>``; a prefix keeps its relative layout.
    """
    if not is_s3(uri):
        path = Path(uri)
        if not path.exists():
            raise StorageError(f"{uri} does not exist")
        return path
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(uri)
    dest = Path(dest)
    client = s3_client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        if not keys:
            raise StorageError(f"{uri}: no such object or prefix")
        single = keys == [key]
        for k in keys:
            rel = Path(k).name if single else Path(k[len(key):].lstrip("/"))
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, k, str(target))
    except (BotoCoreError, ClientError) as err:
        raise StorageError(f"{uri}: {err}") from err
    return dest / Path(key).name if single else dest


# ----------------------------------------------------------------- object-level reads (ingest, score)
# S3 error codes that mean "these credentials are not accepted", as opposed to a missing object.
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken",
    "403", "Forbidden", "AuthorizationHeaderMalformed",
})


def s3_error(uri: str, err: BaseException) -> StorageError:
    """A :class:`StorageError` naming ``uri`` and, for rejected credentials, what to check."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"{uri}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({err})"
        )
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in _CREDENTIAL_CODES:
            return StorageError(
                f"{uri}: the S3 endpoint rejected the credentials ({code}): check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL"
            )
        if code in ("NoSuchBucket", "NoSuchKey", "404"):
            return StorageError(f"{uri}: no such bucket or object ({code})")
    return StorageError(f"{uri}: {err}")


def _s3_call(uri: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except (BotoCoreError, ClientError) as err:
        raise s3_error(uri, err) from err


def list_objects(uri: str, client: Any = None) -> list[str]:
    """Keys under an ``s3://bucket/prefix`` as full ``s3://`` URIs, sorted; [] when there are none."""
    bucket, key = split_s3_uri(uri)
    client = client or s3_client()

    def _list() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(f"{S3_PREFIX}{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", []))

    return list(_s3_call(uri, _list))


def read_object(uri: str, client: Any = None) -> bytes:
    """The bytes of one object (a local path or ``s3://``); FileNotFoundError when it is absent."""
    if not is_s3(uri):
        return Path(uri).read_bytes()
    from botocore.exceptions import ClientError

    bucket, key = split_s3_uri(uri)
    client = client or s3_client()
    try:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as err:
        if str(err.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404"):
            raise FileNotFoundError(uri) from err
        raise s3_error(uri, err) from err


def fetch_object(uri: str, dest: str | Path, client: Any = None) -> Path:
    """Download one ``s3://`` object to the file ``dest`` (parents created)."""
    bucket, key = split_s3_uri(uri)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    client = client or s3_client()
    _s3_call(uri, client.download_file, bucket, key, str(dest))
    return dest


# ----------------------------------------------------------------- uploads (register)
@dataclass(frozen=True)
class Digest:
    """What a file's upload must match: its size, sha256, and the S3 ETag its parts produce."""

    size: int
    sha256: str
    etag: str  # S3's: md5 of the body, or md5 of the part md5s + "-<parts>" for multipart


def transfer_config(threshold_mb: int, chunk_mb: int, concurrency: int) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=threshold_mb << 20, multipart_chunksize=chunk_mb << 20,
                          max_concurrency=concurrency)


def part_size(size: int, config: Any) -> int | None:
    """The part size boto3 will use for a file of ``size`` bytes (None: one PUT, no multipart)."""
    from s3transfer.utils import ChunksizeAdjuster

    if size < config.multipart_threshold:
        return None
    return int(ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size))


def digest(path: Path, config: Any, read_bytes: int = 1 << 20) -> Digest:
    """One read pass: sha256 and the S3 ETag expected for ``path`` uploaded under ``config``."""
    size = path.stat().st_size
    part = part_size(size, config)
    sha, whole_md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    part_md5s: list[bytes] = []
    current, in_part = hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while block := f.read(read_bytes if part is None else min(read_bytes, part - in_part)):
            sha.update(block)
            if part is None:
                whole_md5.update(block)
                continue
            current.update(block)
            in_part += len(block)
            if in_part == part:
                part_md5s.append(current.digest())
                current, in_part = hashlib.md5(usedforsecurity=False), 0
    if part is None:
        return Digest(size, sha.hexdigest(), whole_md5.hexdigest())
    if in_part:
        part_md5s.append(current.digest())
    combined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return Digest(size, sha.hexdigest(), f"{combined}-{len(part_md5s)}")


def check_bucket(uri: str, client: Any = None) -> None:
    """Fail fast (credentials, endpoint, bucket) before any upload starts."""
    bucket, _ = split_s3_uri(uri)
    client = client or s3_client()
    _s3_call(uri, client.head_bucket, Bucket=bucket)


def upload_file(path: Path, uri: str, config: Any, client: Any = None,
                progress: Callable[[int], None] | None = None) -> None:
    """Upload one file to ``uri`` (multipart above the threshold, parts sent in parallel)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError

    bucket, key = split_s3_uri(uri)
    client = client or s3_client()
    try:
        client.upload_file(str(path), bucket, key, Config=config, Callback=progress)
    except ConnectionError as err:  # refused, reset or timed out: the store is down or unreachable
        raise StorageError(f"{uri}: the object store at {client.meta.endpoint_url} is unreachable "
                           f"while uploading {path} ({err})") from err
    except S3UploadFailedError as err:  # boto3 wraps the ClientError of a failed part or PUT
        cause = err.__cause__ or err.__context__
        wrapped = s3_error(uri, cause) if isinstance(cause, ClientError) else StorageError(f"{uri}: {err}")
        raise wrapped from err
    except (BotoCoreError, ClientError) as err:
        raise s3_error(uri, err) from err


def verify_object(uri: str, expected: Digest, client: Any = None) -> None:
    """The stored object has the expected size and S3-computed ETag; StorageError otherwise.

    The ETag is computed by the server from the bytes it received, so a match proves the content.
    When a store's ETags are not MD5-based (e.g. SSE-KMS on AWS), the object is read back and hashed.
    """
    bucket, key = split_s3_uri(uri)
    client = client or s3_client()
    head = _s3_call(uri, client.head_object, Bucket=bucket, Key=key)
    size, etag = int(head["ContentLength"]), str(head.get("ETag", "")).strip('"')
    if size != expected.size:
        raise StorageError(f"{uri}: stored size {size} != local size {expected.size}")
    if etag == expected.etag:
        return
    if _MD5_ETAG.fullmatch(etag):
        raise StorageError(f"{uri}: stored ETag {etag} != expected {expected.etag}: content differs")
    sha = hashlib.sha256()
    body = _s3_call(uri, client.get_object, Bucket=bucket, Key=key)["Body"]
    for block in iter(lambda: body.read(1 << 20), b""):
        sha.update(block)
    if sha.hexdigest() != expected.sha256:
        raise StorageError(f"{uri}: stored sha256 {sha.hexdigest()} != local {expected.sha256}")


def list_multipart_uploads(uri: str, client: Any = None) -> list[str]:
    """Keys (as ``s3://`` URIs) of unfinished multipart uploads under ``uri``, sorted."""
    bucket, key = split_s3_uri(uri)
    client = client or s3_client()
    uploads = _s3_call(uri, client.list_multipart_uploads, Bucket=bucket, Prefix=key).get("Uploads", [])
    return sorted(f"{S3_PREFIX}{bucket}/{u['Key']}" for u in uploads)


def delete_prefix(uri: str, client: Any = None) -> int:
    """Abort unfinished multipart uploads and delete every object under ``uri``; returns how many of
    both it removed."""
    bucket, key = split_s3_uri(uri)
    client = client or s3_client()
    uploads = _s3_call(uri, client.list_multipart_uploads, Bucket=bucket, Prefix=key).get("Uploads", [])
    for upload in uploads:
        _s3_call(uri, client.abort_multipart_upload, Bucket=bucket, Key=upload["Key"],
                 UploadId=upload["UploadId"])
    keys = [u[len(S3_PREFIX) + len(bucket) + 1:] for u in list_objects(uri, client)]
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = [{"Key": k} for k in keys[start:start + _DELETE_BATCH]]
        _s3_call(uri, client.delete_objects, Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(keys) + len(uploads)


_MD5_ETAG = re.compile(r"[0-9a-f]{32}(-\d+)?")
_DELETE_BATCH = 1000  # the S3 API's limit for one DeleteObjects call
