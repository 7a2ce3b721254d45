"""Real ``hookbook serve`` processes for scale-out and crash tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """``hookbook serve --config CONFIG --port PORT`` as a child process."""

    def __init__(self, config: Path, *, port: int | None = None, args: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.config = config
        self.log = config.with_name(f"serve-{self.port}.log")
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hookbook.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.base_url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server on port {self.port} not ready in {timeout} s:\n{self.output()}")

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
