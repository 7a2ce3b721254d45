"""Real ``hookbook serve`` processes for scale-out and crash tests."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

#: What ``hookbook serve`` prints once it listens: the port it got.
_BANNER = re.compile(r"serving http://127\.0\.0\.1:(\d+)/api/v1/")


class OutputLines:
    """A child process's output, read line by line on a thread, so a test can
    wait for a line (with a bound) while the process runs."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: list[str] = []
        self._ended = False
        self._seen = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                with self._cond:
                    self._lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The match of the next line (after the last one matched) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._seen, len(self._lines)):
                    match = regex.search(self._lines[i])
                    if match:
                        self._seen = i + 1
                        return match
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    why = "the output ended" if self._ended else f"not within {timeout} s"
                    raise AssertionError(
                        f"no line matching {pattern!r} ({why}):\n" + "\n".join(self._lines)
                    )
                self._cond.wait(remaining)

    def text(self, timeout: float) -> str:
        """Everything printed, once the stream has ended (bounded by ``timeout``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the output did not end within {timeout} s")
        with self._cond:
            return "\n".join(self._lines)


def write_config(path: Path, *, database: str, directory: Path, api_key: str, **extra: Any) -> Path:
    """A config file for test servers (webhook rules relaxed for loopback receivers)."""
    webhooks = {
        "secret_keys": ["test-secret-key"],
        "allow_http": True,
        "allow_private_addresses": True,
        "retry_schedule": [0.05, 0.05],
        "lease_seconds": 10,
        "poll_interval": 0.5,
        **extra.pop("webhooks", {}),
    }
    config = {
        "database": database,
        "directory": str(directory),
        "api_keys": [{"key": api_key, "scopes": ["admin"]}],
        "webhooks": webhooks,
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


class ServeProcess:
    """``hookbook serve --config CONFIG --port 0`` as a child process.

    The server picks its port and prints it; :meth:`wait_ready` reads it back
    (:attr:`port`, :attr:`base_url`), so no port number is chosen here.
    """

    _count = itertools.count()

    def __init__(self, config: Path, *, args: tuple[str, ...] = ()):
        self.config = config
        self.log = config.with_name(f"serve-{os.getpid()}-{next(self._count)}.log")
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self._port: int | None = None
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hookbook.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                "0",
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the port is known once wait_ready() has read it")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> ServeProcess:
        """Wait for the banner with the port, then for ``/healthz`` to answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            if self._port is None:
                banner = _BANNER.search(self.log.read_text(errors="replace"))
                self._port = int(banner[1]) if banner else None
            if self._port is not None:
                try:
                    if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready in {timeout} s:\n{self.output()}")

    def health(self) -> dict[str, Any]:
        """The detailed health document (the config's first key: an admin key)."""
        key = yaml.safe_load(self.config.read_text())["api_keys"][0]["key"]
        return httpx.get(f"{self.base_url}/healthz", params={"api_key": key}, timeout=5).json()

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
