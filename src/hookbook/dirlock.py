"""One server per directory: an exclusive lock file held while a server runs.

On SQLite two servers on one directory would both send every delivery, so
the second one is refused. The lock is an ``flock`` on a file in the
directory: the operating system releases it when the process dies, even by
``kill -9``, so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DirectoryInUseError

LOCK_NAME = ".hookbook.lock"


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryInUseError(
                f"directory {self.path.parent} is already used by another hookbook server "
                f"(pid {holder}); two servers on one directory would send every delivery "
                "twice. Stop the other server or use another directory.",
                directory=str(self.path.parent),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
