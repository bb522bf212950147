"""A source of raw files: a local file or folder, or an ``s3://`` object or prefix.

Readers see one small API whatever the location: the list of files, a local path for one file
(an S3 object is downloaded to a temporary file, removed after use, so at most one shard sits on
disk at a time) and the bytes of one file (images).
"""

from __future__ import annotations

import posixpath
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from damo import storage
from damo.ingest.records import IngestError


class Source(ABC):
    """Files under a location. ``files`` are absolute paths or ``s3://`` URIs, sorted."""

    uri: str
    is_file: bool

    @abstractmethod
    def files(self) -> list[str]: ...

    @abstractmethod
    def local(self, file: str) -> Any:  # a context manager giving a local Path
        ...

    @abstractmethod
    def read_bytes(self, file: str) -> bytes:
        """The file's bytes; FileNotFoundError when absent."""

    def relative(self, file: str) -> str:
        """``file`` relative to the source (its own name when the source is one file)."""
        base = self.uri if not self.is_file else parent(self.uri)
        return file[len(base) :].lstrip("/") if file.startswith(base) else file


class LocalSource(Source):
    def __init__(self, path: str):
        self.uri = str(Path(path).absolute())
        p = Path(self.uri)
        if not p.exists():
            raise IngestError(f"source {path} does not exist")
        self.is_file = p.is_file()
        self._files = [self.uri] if self.is_file else sorted(str(f) for f in p.rglob("*") if f.is_file())

    def files(self) -> list[str]:
        return self._files

    @contextmanager
    def local(self, file: str) -> Iterator[Path]:
        yield Path(file)

    def read_bytes(self, file: str) -> bytes:
        return Path(file).read_bytes()


class S3Source(Source):
    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self._client = storage.s3_client()
        keys = storage.list_objects(self.uri, self._client)
        exact = [k for k in keys if k == self.uri]
        self.is_file = bool(exact)
        self._files = exact or [k for k in keys if k.startswith(self.uri + "/")]
        if not self._files:
            raise IngestError(f"source {uri} does not exist (no object or prefix of that name)")

    def files(self) -> list[str]:
        return self._files

    @contextmanager
    def local(self, file: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="damo-ingest-") as tmp:
            yield storage.fetch_object(file, Path(tmp) / posixpath.basename(file), self._client)

    def read_bytes(self, file: str) -> bytes:
        return storage.read_object(file, self._client)


def open_source(uri: str) -> Source:
    """The :class:`Source` for a local path or ``s3://`` URI; IngestError when it does not exist."""
    try:
        return S3Source(uri) if storage.is_s3(uri) else LocalSource(uri)
    except storage.StorageError as err:
        raise IngestError(f"source {uri}: {err}") from err


def parent(uri: str) -> str:
    return posixpath.dirname(uri.rstrip("/")) if storage.is_s3(uri) else str(Path(uri).parent)


def join(base: str, rel: str) -> str:
    return posixpath.join(base, rel) if storage.is_s3(base) else str(Path(base) / rel)


def inside(folder: str, rel: str) -> str | None:
    """``folder/rel`` when it stays inside ``folder`` (no ``..`` escape, no absolute path), else None.

    Local folders are also checked after resolving symlinks.
    """
    if not rel or rel.startswith(("/", "\\")) or Path(rel).is_absolute() or storage.is_s3(rel):
        return None
    normal = posixpath.normpath(rel.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return None
    target = join(folder, normal)
    if not storage.is_s3(folder):
        root = Path(folder).resolve()
        resolved = Path(target).resolve()
        if resolved != root and root not in resolved.parents:
            return None
    return target
