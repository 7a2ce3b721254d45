"""The local-directory backend: data files under one directory on this host.

Every file is written under a temporary name (ending ``.partial``) and renamed
into place, so a reader never sees half a file; a killed writer leaves only a
``.partial`` file, which the start-up sweep removes. Files are not fsynced:
they are as durable as the embedded database's commits (SQLite in WAL mode
with ``synchronous=NORMAL``), which survive a crashed or killed process, not
necessarily a power cut.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The suffix of a file being written; never a finished file's.
PARTIAL = ".partial"


class LocalBackend:
    """Keys are ``/``-separated paths relative to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def location(self) -> str:
        return str(self.directory)

    def zarr_store(self, key: str) -> Any:
        """A ``zarr.storage.LocalStore`` rooted at ``key`` (one array's folder)."""
        from zarr.storage import LocalStore

        return LocalStore(self.directory / key)

    def read_bytes(self, key: str) -> bytes:
        """The file's bytes; ``FileNotFoundError`` if there is none."""
        return (self.directory / key).read_bytes()

    def write_bytes(self, key: str, data: bytes | memoryview) -> None:
        """Write a whole file atomically (a temporary name, then a rename)."""
        target = self.directory / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}{PARTIAL}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, key: str) -> None:
        """Remove a file, or a folder with everything in it; nothing there is fine."""
        path = self.directory / key
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def entries(self, prefix: str) -> Iterator[tuple[str, float]]:
        """The keys directly under ``prefix`` and their modification times (epoch s)."""
        folder = self.directory / prefix
        try:
            scanner = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        with scanner:
            for entry in scanner:
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:  # removed meanwhile
                    continue
                yield f"{prefix.rstrip('/')}/{entry.name}" if prefix else entry.name, mtime
