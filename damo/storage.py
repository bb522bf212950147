"""Local paths and ``s3://bucket/key`` URIs, through one small API.

The S3 endpoint and credentials come only from the standard AWS environment variables
(``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), never from config files, so no secret is ever written with a resolved config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

S3_PREFIX = "s3://"


class StorageError(RuntimeError):
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

    return boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}))


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
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                for o in page.get("Contents", [])]
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
        return StorageError(f"{uri}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({err})")
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
