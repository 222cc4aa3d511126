"""Local paths and object-store URIs (``s3://``, ``gs://``, ``file://``) through one code path.

pyarrow's filesystems do the work: ``resolve`` turns a path or URI into a
filesystem and a path on it; decoders that need a local file get one from
:func:`local_copy` (the file itself when it is already local).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


@dataclass(frozen=True)
class FileEntry:
    """A file under a root: its path relative to the root, size and modification time."""

    rel: str
    size: int
    mtime_ns: int


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and the path on it for a local path or a URI."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def join(uri: str, rel: str) -> str:
    """``uri`` / ``rel`` for paths and URIs alike."""
    return f"{uri.rstrip('/')}/{rel}" if "://" in uri else str(Path(uri) / rel)


def list_files(uri: str) -> list[FileEntry]:
    """Every file under ``uri`` (recursive), sorted by relative path; hidden files skipped.

    Raises FileNotFoundError naming the root when it does not exist.
    """
    fs, root = resolve(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"input {uri} does not exist")
    if info.type != pafs.FileType.Directory:
        raise NotADirectoryError(f"input {uri} is not a folder")
    out = []
    for f in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if f.type != pafs.FileType.File:
            continue
        rel = f.path[len(root) :].lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        out.append(FileEntry(rel, int(f.size or 0), int(f.mtime_ns or 0)))
    return sorted(out, key=lambda e: e.rel)


def read_text(uri: str) -> str:
    """The text of one file (local or remote)."""
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path holding the file: itself when local, else a temporary download."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="mg-fetch-") as tmp:
        local = Path(tmp) / Path(path).name
        with fs.open_input_stream(path) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        yield local


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file; readers never see it half-written (rename locally, one PUT remotely)."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        return
    with fs.open_output_stream(path) as f:
        f.write(data)
