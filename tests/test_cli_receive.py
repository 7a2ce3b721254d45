"""``hookbook receive`` as a user runs it: a real process, a signed delivery, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx

from hookbook.signing import sign_headers
from processes import OutputLines


def test_receive_prints_deliveries_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hookbook.cli",
            "receive",
            "--port",
            "0",
            "--secret",
            "s3cret",
            "--status",
            "503",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
    )
    output = OutputLines(proc.stdout)
    try:
        port = int(output.wait_for(r"Listening on http://127\.0\.0\.1:(\d+)/", timeout=30)[1])
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
        url = f"http://127.0.0.1:{port}/"
        response = httpx.post(url, content=body, headers=headers)
        forged = {**headers, "webhook-signature": "v1," + "A" * 44}
        assert httpx.post(url, content=body, headers=forged).status_code == 503
        # Each delivery is printed as it arrives, before Ctrl-C.
        valid = output.wait_for(r"^#1 .*$", timeout=30)[0]
        invalid = output.wait_for(r"^#2 .*$", timeout=30)[0]
        assert response.status_code == 503  # --status answers every delivery
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    text = output.text(timeout=10)
    assert proc.returncode == 0, text
    assert "stream-closed  path=run1/det  key=det  event_id=" + "ab" * 16 in valid
    # The exact verdict of each: "valid" alone would also match "INVALID".
    assert "signature: valid (standard-webhooks)  -> 503" in valid
    assert "signature: INVALID: BadSignatureError" in invalid
    assert (
        f"Inspector (deliveries live, fault controls): http://127.0.0.1:{port}/_hookbook/?token="
        in text
    )
