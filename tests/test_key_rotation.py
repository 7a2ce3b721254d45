"""Key rotation: a new key first re-encrypts stored secrets at start-up, so the
old key can then be dropped without losing a webhook's signing secret."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from hookbook.webhooks.secrets import SecretBox, generate_key


def _ciphertexts(directory: Path) -> list[str]:
    with sqlite3.connect(directory / "hookbook.db") as db:
        return [row[0] for row in db.execute("SELECT secret_ciphertext FROM webhooks")]


def test_rotation_reencrypts_then_old_key_can_go(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    with WebhookReceiver(secret="s3cret") as receiver:
        with (
            SimpleServer(tmp_path, webhooks={"secret_keys": [old]}) as server,
            from_uri(server.uri) as client,
        ):
            client.webhooks.register(receiver.url, secret="s3cret")
        (before,) = _ciphertexts(tmp_path)
        assert SecretBox([old]).is_current(before)

        # New key first, old key kept: the secret is re-encrypted with the new key.
        with SimpleServer(tmp_path, webhooks={"secret_keys": [new, old]}):
            pass
        (after,) = _ciphertexts(tmp_path)
        assert after != before
        assert SecretBox([new]).is_current(after)
        assert "s3cret" not in after

        # The old key can now be dropped: deliveries are still signed.
        with SimpleServer(tmp_path, webhooks={"secret_keys": [new]}) as server:
            with from_uri(server.uri) as client:
                client.write_array(np.arange(3), key="x")
            (delivery,) = receiver.wait_for(1, timeout=10)
            server.drain()
    assert delivery.signature_valid is True


def test_a_secret_no_key_decrypts_is_left_alone(tmp_path: Path) -> None:
    lost, other = generate_key(), generate_key()
    with (
        SimpleServer(tmp_path, webhooks={"secret_keys": [lost]}) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register("http://127.0.0.1:9/hook", secret="s3cret")
    (before,) = _ciphertexts(tmp_path)
    with SimpleServer(tmp_path, webhooks={"secret_keys": [other]}):
        pass
    assert _ciphertexts(tmp_path) == [before]  # fails closed at delivery, never lost here
