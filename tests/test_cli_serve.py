"""``hookbook serve --config F`` as a real process: it prints where it listens,
serves the API, and stops cleanly on SIGTERM and on SIGINT."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading

import httpx
import numpy as np
import pytest

from hookbook.client import from_uri

pytestmark = pytest.mark.slow

KEY = "cli_admin_key_123"
STARTUP_WAIT = 60  # seconds: a loaded CI machine imports slowly
STOP_WAIT = 30


class Serve:
    """``hookbook serve`` in a subprocess, its output read line by line on a thread."""

    def __init__(self, config, *extra: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookbook.cli", "serve", "--config", str(config), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, pattern: str, timeout: float = STARTUP_WAIT) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s") from None
            if line is None:
                raise AssertionError(
                    f"the process ended (rc {self.process.wait()}) without printing {pattern!r}; "
                    f"stdout {self.output!r}; stderr {self.process.stderr.read()!r}"
                )
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self, sig: int) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        try:
            self.process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"the server did not stop within {STOP_WAIT} s of {sig!r}"
            ) from None
        self._reader.join(10)
        return self.process.returncode, "".join(self.output), self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "hookbook.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            directory: ./catalog data
            api_keys:
              - key: ${HOOKBOOK_CLI_TEST_KEY}
            webhooks:
              secret_keys: [${HOOKBOOK_CLI_TEST_SECRET}]
              allow_http: true
              allow_private_addresses: true
            """
        )
    )
    return path


ENV = {"HOOKBOOK_CLI_TEST_KEY": KEY, "HOOKBOOK_CLI_TEST_SECRET": "a-secret-key"}
LISTENING = r"serving (http://127\.0\.0\.1:(\d+)/api/v1/)"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_where_it_listens_serves_and_stops_cleanly(config, tmp_path, sig):
    server = Serve(config, "--port", "0", env=ENV)
    try:
        match = server.wait_for_line(LISTENING)
        url, port = match.group(1), int(match.group(2))
        assert port > 0
        # The line is printed once the server listens: the API answers at once.
        about = httpx.get(url, timeout=10)
        assert about.status_code == 200
        assert about.json()["links"]["self"].endswith(f":{port}/api/v1")
        with from_uri(url, api_key=KEY) as client:
            client.write_array(np.arange(3), key="a")
            assert client["a"].read().tolist() == [0, 1, 2]
            assert client.webhooks.list_all() == []
        rc, out, err = server.stop(sig)
    finally:
        server.kill()
    assert rc == 0, (rc, out, err)
    assert out.rstrip().endswith("hookbook stopped")
    assert f"dashboard http://127.0.0.1:{port}/ui/" in out
    assert "Traceback" not in err
    assert (tmp_path / "catalog data" / "hookbook.db").exists()


def test_serve_names_an_unset_variable(config, capsys, monkeypatch):
    """In-process (no server starts): exit status 2 and the variable's name."""
    from hookbook.cli import main

    monkeypatch.delenv("HOOKBOOK_CLI_TEST_KEY", raising=False)

    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "HOOKBOOK_CLI_TEST_KEY" in err and "not set" in err
    assert "Traceback" not in err
