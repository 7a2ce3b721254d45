"""The ``webhooks`` settings: bad ones stop the server at start-up naming the setting;
the harness relaxation is explicit and logged; the engine knobs do what they say."""

from __future__ import annotations

import asyncio
import logging
import textwrap

import pytest

from hookbook.client import from_uri
from hookbook.config import load_config, parse_settings
from hookbook.errors import ConfigurationError, ConflictError, UnsafeURLError
from hookbook.server import SimpleServer
from hookbook.server.app import create_app
from hookbook.server.services import Seams, Services
from hookbook.testing import WebhookReceiver

KEY = "settings_test_api_key"

BAD = [
    ({"blocked_networks": ["10.0.0.0/33"]}, "webhooks.blocked_networks"),
    ({"blocked_networks": ["not-a-network"]}, "webhooks.blocked_networks"),
    ({"allow_delivery_hosts": ["10.0.0.1"]}, "webhooks.allow_delivery_hosts"),
    ({"allow_delivery_hosts": ["[::1]"]}, "webhooks.allow_delivery_hosts"),
    ({"allow_delivery_hosts": ["2130706433"]}, "webhooks.allow_delivery_hosts"),
    ({"secret_keys": [""]}, "webhooks.secret_keys"),
    ({"secret_keys": ["   "]}, "webhooks.secret_keys"),
    ({"retry_schedule": [1, -1]}, "webhooks.retry_schedule"),
    ({"poll_interval": 0}, "webhooks.poll_interval"),
    ({"max_in_flight": 0}, "webhooks.max_in_flight"),
    ({"no_such_setting": 1}, "webhooks.no_such_setting"),
]


@pytest.mark.parametrize(("webhooks", "setting"), BAD)
def test_simple_server_refuses_bad_settings_at_start_up(tmp_path, webhooks, setting):
    with pytest.raises(ConfigurationError) as caught:
        SimpleServer(tmp_path, webhooks=webhooks)
    assert setting in str(caught.value)
    # Nothing was left running: the directory is free for a good server.
    with SimpleServer(tmp_path, enable_webhooks=True):
        pass


def _start(settings) -> None:
    async def start_and_stop() -> None:
        services = await Services.start(settings, Seams())
        await services.stop()

    asyncio.run(start_and_stop())


@pytest.mark.parametrize(
    ("webhooks", "setting"),
    [
        ({"secret_keys": []}, "webhooks.secret_keys"),
        ({"secret_keys": ["k"], "blocked_networks": ["10.0.0.0/33"]}, "webhooks.blocked_networks"),
        (
            {"secret_keys": ["k"], "allow_delivery_hosts": ["127.0.0.1"]},
            "webhooks.allow_delivery_hosts",
        ),
        ({}, "webhooks.secret_keys"),
    ],
)
def test_a_server_from_settings_refuses_bad_settings(tmp_path, webhooks, setting):
    with pytest.raises(ConfigurationError) as caught:
        settings = parse_settings(
            {"directory": str(tmp_path), "api_keys": [{"key": KEY}], "webhooks": webhooks}
        )
        create_app(settings)
        _start(settings)
    assert setting in str(caught.value)


def test_a_config_file_with_empty_secret_keys_is_refused(tmp_path):
    config = tmp_path / "hookbook.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            directory: ./data
            api_keys:
              - key: {KEY}
            webhooks:
              secret_keys: []
            """
        )
    )
    with pytest.raises(ConfigurationError, match=r"webhooks\.secret_keys"):
        load_config(config)


def test_a_config_file_with_an_unset_secret_key_variable_is_refused(tmp_path):
    config = tmp_path / "hookbook.yaml"
    config.write_text(
        "api_keys:\n  - key: " + KEY + "\nwebhooks:\n  secret_keys: ['${HOOKBOOK_TEST_UNSET}']\n"
    )
    with pytest.raises(ConfigurationError, match="HOOKBOOK_TEST_UNSET"):
        load_config(config, environ={})
    # Set but empty: still refused, naming the setting.
    with pytest.raises(ConfigurationError, match=r"webhooks\.secret_keys"):
        load_config(config, environ={"HOOKBOOK_TEST_UNSET": ""})


def test_hookbook_serve_stops_at_start_up_naming_the_setting(tmp_path, capsys):
    """In-process: the settings are refused before any server starts."""
    from hookbook.cli import main

    config = tmp_path / "hookbook.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            directory: ./data
            api_keys:
              - key: {KEY}
            webhooks:
              secret_keys: [a-long-random-key]
              blocked_networks: [10.0.0.0/99]
            """
        )
    )
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "webhooks.blocked_networks" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- #
# The harness relaxation
# --------------------------------------------------------------------------- #


def test_the_harness_relaxation_is_logged(caplog):
    caplog.set_level(logging.WARNING, logger="hookbook")
    with SimpleServer(enable_webhooks=True) as server:
        assert server.settings.webhooks.allow_http is True
        assert server.settings.webhooks.allow_private_addresses is True
    relaxed = [r for r in caplog.records if "relaxed" in r.getMessage()]
    assert len(relaxed) == 1
    assert relaxed[0].levelno == logging.WARNING
    assert relaxed[0].name == "hookbook.webhooks.service.relaxed_rules"  # quieted by name
    assert "allow_http=True" in relaxed[0].getMessage()
    assert "allow_private_addresses=True" in relaxed[0].getMessage()


def test_production_settings_log_no_relaxation(caplog):
    caplog.set_level(logging.WARNING, logger="hookbook")
    production = {"allow_http": False, "allow_private_addresses": False}
    with SimpleServer(webhooks=production) as server:
        assert server.settings.webhooks.allow_http is False
    assert not [r for r in caplog.records if "relaxed" in r.getMessage()]


def test_production_defaults_refuse_both():
    settings = parse_settings(
        {"directory": ".", "api_keys": [{"key": KEY}], "webhooks": {"secret_keys": ["k"]}}
    )
    assert settings.webhooks.allow_http is False
    assert settings.webhooks.allow_private_addresses is False
    assert settings.webhooks.retry_schedule == (1.0, 5.0)


def test_harness_settings_merge_key_by_key():
    with SimpleServer(webhooks={"allow_http": False, "retry_schedule": [0.5]}) as server:
        webhooks = server.settings.webhooks
        assert webhooks.allow_http is False
        assert webhooks.allow_private_addresses is True
        assert webhooks.retry_schedule == (0.5,)
        assert webhooks.secret_keys == (server.webhook_secret_key,)


# --------------------------------------------------------------------------- #
# Engine knobs
# --------------------------------------------------------------------------- #


class HangingResolver:
    def __init__(self) -> None:
        self.hang = False

    async def __call__(self, host: str, port: int) -> list[str]:
        if self.hang:
            await asyncio.sleep(60)
        return ["127.0.0.1"]


def test_resolve_timeout_bounds_every_lookup():
    resolver = HangingResolver()
    settings = {"resolve_timeout": 0.2, "retry_schedule": [0.01]}
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks=settings, seams=Seams(resolver=resolver)) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(f"http://hooks.test:{receiver.port}/webhook")
        resolver.hang = True
        with pytest.raises(UnsafeURLError, match="timed out"):
            client.webhooks.register(f"http://other.test:{receiver.port}/webhook")
        client.create_container("a")
        server.drain(timeout=10)
        (record,) = client.webhooks.history(hook.id)
        assert record.outcome == "failed"
        assert record.attempts == 2
        assert "timed out" in record.error_detail
        assert receiver.deliveries == []


def test_max_webhooks():
    with SimpleServer(webhooks={"max_webhooks": 2}) as server, from_uri(server.uri) as client:
        client.webhooks.register("http://127.0.0.1:9/a")
        second = client.webhooks.register("http://127.0.0.1:9/b")
        with pytest.raises(ConflictError, match=r"webhooks\.max_webhooks"):
            client.webhooks.register("http://127.0.0.1:9/c")
        assert len(client.webhooks.list_all()) == 2
        client.webhooks.delete(second.id)
        client.webhooks.register("http://127.0.0.1:9/c")


def test_the_routes_are_not_mounted_without_a_webhooks_section(tmp_path):
    settings = parse_settings({"directory": str(tmp_path), "api_keys": [{"key": KEY}]})
    paths = create_app(settings).openapi()["paths"]
    assert "/api/v1/metadata/{path}" in paths
    assert not [p for p in paths if p.startswith("/api/v1/webhooks")]
    with_webhooks = create_app(
        parse_settings(
            {
                "directory": str(tmp_path),
                "api_keys": [{"key": KEY}],
                "webhooks": {"secret_keys": ["k"]},
            }
        )
    )
    mounted = with_webhooks.openapi()["paths"]
    assert "/api/v1/webhooks/target/{path}" in mounted
    assert "/api/v1/webhooks/history/{webhook_id}" in mounted
