"""SimpleServer: start, restart on the same directory, a busy directory, paths
with spaces, two servers in one process, close, start-up failures, Jupyter."""

from __future__ import annotations

import json
import re
import socket
import threading

import httpx
import numpy as np
import pytest
import sqlalchemy

from hookbook.client import from_uri
from hookbook.errors import ConfigurationError, DirectoryInUseError
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from keepalive import assert_idle_connections_stay_open

FAST = {"retry_schedule": [0.01, 0.01]}


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("hookbook-server-")]


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_start_answers_at_once_with_the_documented_attributes():
    with SimpleServer() as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1\?api_key=\w+", server.uri)
        assert server.port > 0
        assert server.uri == f"http://127.0.0.1:{server.port}/api/v1?api_key={server.api_key}"
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.directory.is_dir()
        assert server.webhook_secret_key is None
        # No wait needed: the constructor returns once the app answers.
        response = httpx.get(
            f"{server.base_url}/api/v1/metadata/", params={"api_key": server.api_key}
        )
        assert response.status_code == 200
        # Webhooks are off: their routes are not mounted.
        hooks = httpx.get(f"{server.base_url}/api/v1/webhooks/", params={"api_key": server.api_key})
        assert hooks.status_code == 404
        assert hooks.headers["content-type"].startswith("application/json")
        with pytest.raises(RuntimeError, match="webhooks are not enabled"):
            server.drain()


def test_enable_webhooks_and_settings_merge():
    with SimpleServer(enable_webhooks=True) as server:
        assert server.webhook_secret_key
        settings = server.settings.webhooks
        assert settings.allow_http and settings.allow_private_addresses
        assert settings.secret_keys == (server.webhook_secret_key,)
    with SimpleServer(webhooks={"retry_schedule": [0.5], "secret_keys": ["given-key"]}) as server:
        settings = server.settings.webhooks
        assert settings.retry_schedule == (0.5,)
        assert settings.allow_http  # the harness defaults stay under what was merged
        assert server.webhook_secret_key == "given-key"


def test_restart_on_the_same_directory_keeps_catalog_keys_and_webhooks(tmp_path):
    directory = tmp_path / "catalog"
    with WebhookReceiver(secret="s3cret") as receiver:
        with SimpleServer(directory, webhooks=FAST) as first:
            api_key, secret_key = first.api_key, first.webhook_secret_key
            with from_uri(first.uri) as client:
                hook = client.webhooks.register(receiver.url, secret="s3cret")
                client.write_array(np.arange(5), key="a", metadata={"run": 1})
            receiver.wait_for(1, timeout=10)
            first.drain()
        assert directory.is_dir()  # a given directory is kept
        state = json.loads((directory / "hookbook-harness.json").read_text())
        assert state["api_key"] == api_key

        receiver.clear()
        with SimpleServer(directory, webhooks=FAST) as second:
            assert second.api_key == api_key
            assert second.webhook_secret_key == secret_key
            with from_uri(second.uri) as client:
                assert client.keys() == ["a"]
                assert client["a"].read().tolist() == [0, 1, 2, 3, 4]
                assert client["a"].metadata == {"run": 1}
                assert [h.id for h in client.webhooks.list_all()] == [hook.id]
                client.write_array([1.0], key="b")
            (delivery,) = receiver.wait_for(1, timeout=10)
            second.drain()
        assert delivery.json["key"] == "b"
        # The secret was decrypted with the key stored in the directory.
        assert delivery.signature_valid is True


def test_a_given_api_key_wins_over_the_stored_one(tmp_path):
    with SimpleServer(tmp_path) as first:
        generated = first.api_key
    with SimpleServer(tmp_path, api_key="my_own_key_123") as second:
        assert second.api_key == "my_own_key_123"
        bad = httpx.get(f"{second.base_url}/api/v1/metadata/", params={"api_key": generated})
        assert bad.status_code == 401
    with SimpleServer(tmp_path) as third:
        assert third.api_key == generated


def test_a_second_server_on_a_busy_directory_is_refused(tmp_path):
    threads_before = server_threads()
    with SimpleServer(tmp_path) as first:
        with pytest.raises(DirectoryInUseError) as info:
            SimpleServer(tmp_path)
        message = str(info.value)
        assert str(tmp_path) in message
        assert "already used by another hookbook server" in message
        assert "twice" in message
        # The refused server left nothing running; the first one works on.
        assert server_threads() == [*threads_before, f"hookbook-server-{first.port}"]
        with from_uri(first.uri) as client:
            client.create_container("still-here")
    assert tmp_path.is_dir()
    with SimpleServer(tmp_path) as again, from_uri(again.uri) as client:
        assert client.keys() == ["still-here"]


def test_a_directory_path_with_spaces(tmp_path):
    directory = tmp_path / "my catalog dir" / "ünïcode & more"
    with SimpleServer(directory) as server:
        assert server.directory == directory.resolve()
        with from_uri(server.uri) as client:
            client.write_array(np.arange(3), key="a")
            client.write_table({"x": [1]}, key="t")
    with SimpleServer(directory) as server, from_uri(server.uri) as client:
        assert client["a"].read().tolist() == [0, 1, 2]
        assert client["t"].read()["x"].tolist() == [1]
    assert (directory / "hookbook.db").exists()


def test_two_servers_in_one_process_with_different_settings():
    reader = {"key": "reader_key_123", "scopes": ["read:metadata"]}
    with SimpleServer(webhooks=FAST, api_keys=[reader]) as a, SimpleServer() as b:
        assert a.port != b.port
        assert a.directory != b.directory
        assert a.api_key != b.api_key
        with from_uri(a.uri) as client_a, from_uri(b.uri) as client_b:
            client_a.create_container("only-in-a")
            client_b.write_array([1, 2], key="only-in-b")
            assert client_a.keys() == ["only-in-a"]
            assert client_b.keys() == ["only-in-b"]
            assert client_a.webhooks.list_all() == []
        api_b = f"{b.base_url}/api/v1"
        assert httpx.get(f"{api_b}/webhooks/", params={"api_key": b.api_key}).status_code == 404
        # Keys belong to one server.
        assert httpx.get(f"{api_b}/metadata/", params={"api_key": a.api_key}).status_code == 401
        api_a = f"{a.base_url}/api/v1"
        assert (
            httpx.get(f"{api_a}/metadata/", params={"api_key": "reader_key_123"}).status_code == 200
        )
        assert (
            httpx.get(f"{api_b}/metadata/", params={"api_key": "reader_key_123"}).status_code == 401
        )
        # Closing one leaves the other serving.
        a.close()
        assert httpx.get(f"{api_b}/metadata/", params={"api_key": b.api_key}).status_code == 200


def test_close_stops_the_server_and_removes_a_temporary_directory(tmp_path, reserved_port):
    server = SimpleServer(port=reserved_port)  # reserved: nothing else listens there after
    with from_uri(server.uri) as client:
        client.write_array([1], key="a")  # an open keep-alive connection during close
        directory, port = server.directory, server.port
        server.close()
    assert not directory.exists()
    assert f"hookbook-server-{port}" not in server_threads()
    assert not accepts_connections(port)
    assert "closed" in repr(server)
    server.close()  # a second close is harmless

    kept = SimpleServer(tmp_path / "kept")
    kept.close()
    assert (tmp_path / "kept" / "hookbook.db").exists()


def test_a_start_up_failure_raises_the_servers_own_error_in_the_caller(tmp_path):
    threads_before = server_threads()
    with pytest.raises(ConfigurationError, match="blocked_networks") as info:
        SimpleServer(tmp_path, webhooks={"blocked_networks": ["not-a-cidr"]})
    assert "not-a-cidr" in str(info.value)
    assert server_threads() == threads_before
    # The failed start released the directory.
    with SimpleServer(tmp_path) as server:
        assert server.port > 0

    with pytest.raises(ConfigurationError, match="retry_schedule"):
        SimpleServer(webhooks={"retry_schedule": [-1]})
    # An unreachable database fails like any other database error (the refusal chained).
    with pytest.raises(sqlalchemy.exc.OperationalError, match="cannot reach the database"):
        SimpleServer(database="postgresql+asyncpg://postgres@127.0.0.1:1/none", startup_timeout=20)
    assert server_threads() == threads_before


def test_a_temporary_directory_is_removed_after_a_failed_start(monkeypatch, tmp_path):
    import tempfile

    made = tmp_path / "temp-server-dir"
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix="": str(made.mkdir() or made))
    with pytest.raises(ConfigurationError):
        SimpleServer(webhooks={"blocked_networks": ["nope"]})
    assert not made.exists()


def test_repr_html():
    with SimpleServer(webhooks={"retry_schedule": [0.25, 2]}) as server:
        page = server._repr_html_()
        assert page.startswith("<table>")
        assert server.uri in page
        assert str(server.directory) in page
        assert "running" in page
        assert "0.25, 2" in page
        assert ">on<" in page.replace("<code>", "").replace("</code>", "")
    assert "closed" in server._repr_html_()
    with SimpleServer() as plain:
        assert "off" in plain._repr_html_()


def test_run_executes_on_the_server_loop():
    with SimpleServer() as server:
        node = server.run(server.app.state.services.store.get(""))
        assert node.structure_family == "container"


def test_idle_connections_outlive_the_clients_own_keep_alive():
    with SimpleServer() as server:
        assert server.settings.keep_alive_timeout == 75
        assert_idle_connections_stay_open(server.port)
