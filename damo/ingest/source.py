"""A source of raw files: a local file or folder, or an ``s3://`` object or prefix.

Readers see one small API whatever the location: the list of files, a local path for one file
(an S3 object is downloaded to a temporary file, removed after use, so at most one shard sits on
disk at a time) and the bytes of one file (images).
"""

from __future__ import annotations

import os
import posixpath
import stat
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
    """A local file or folder. Only regular files inside the source are listed and read: a symlink is
    followed only when its target stays inside the source folder, and a symlink leaving it or a
    special file (FIFO, device, socket) is refused by name before anything is read."""

    def __init__(self, path: str):
        self.uri = str(Path(path).absolute())
        p = Path(self.uri)
        if not p.exists():
            raise IngestError(f"source {path} does not exist")
        self.is_file = not p.is_dir()
        if self.is_file:
            _require_regular(p, p)
            self._files = [self.uri]
        else:
            self._files = sorted(str(f) for f in p.rglob("*") if _listed(f, p.resolve()))

    def files(self) -> list[str]:
        return self._files

    @contextmanager
    def local(self, file: str) -> Iterator[Path]:
        yield Path(file)

    def read_bytes(self, file: str) -> bytes:
        """The bytes of a regular file; a FIFO or device is never opened for reading (IngestError)."""
        _require_regular(Path(file), Path(file))
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a FIFO swapped in cannot block
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise IngestError(f"{file} is not a regular file; refused")
            return f.read()


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _require_regular(path: Path, shown: Path) -> None:
    mode = path.stat().st_mode  # follows a link: its target is what would be read
    if not stat.S_ISREG(mode):
        raise IngestError(f"{shown} is {_kind(mode)}; ingest reads only regular files and never opens it")


def _listed(entry: Path, root: Path) -> bool:
    """True for a regular file (or a link to one) inside ``root``; False for folders and for links to
    folders (rglob lists their content anyway when inside). A link leaving ``root`` or a special file
    raises IngestError naming it: its content is never read."""
    if entry.is_symlink():
        target = entry.resolve()
        if target != root and root not in target.parents:
            raise IngestError(f"{entry} is a symlink to {target}, outside the source {root}; refused "
                              "(copy the file into the source)")
    if not entry.exists() or entry.is_dir():
        if not entry.exists():
            raise IngestError(f"{entry} is a dangling symlink; refused")
        return False
    _require_regular(entry, entry)
    return True


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
