"""``hookbook receive`` as a user runs it: a real process, a signed delivery, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx

from conftest import wait_until
from hookbook.signing import sign_headers
from processes import free_port


def test_receive_prints_deliveries_and_stops_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hookbook.cli",
            "receive",
            "--port",
            str(port),
            "--secret",
            "s3cret",
            "--status",
            "503",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
    )
    try:

        def post() -> httpx.Response | None:
            body = json.dumps(
                {
                    "type": "stream-closed",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "key": "det",
                    "path": ["run1", "det"],
                }
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Tiled-Event-ID": "ab" * 16,
                **sign_headers(body, "s3cret", "ab" * 16),
            }
            try:
                return httpx.post(f"http://127.0.0.1:{port}/", content=body, headers=headers)
            except httpx.TransportError:
                return None  # not listening yet

        response = wait_until(post, timeout=30, message="hookbook receive listening")
        assert response.status_code == 503  # --status answers every delivery
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    text = output.decode()
    assert proc.returncode == 0, text
    assert "stream-closed" in text
    assert "run1/det" in text or "['run1', 'det']" in text
    assert "ab" * 16 in text
    assert "valid" in text.lower()
    assert (
        f"Inspector (deliveries live, fault controls): http://127.0.0.1:{port}/_hookbook/?token="
        in text
    )
