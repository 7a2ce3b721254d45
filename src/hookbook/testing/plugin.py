"""hookbook's pytest plugin: a webhook receiver, a server and a client per test.

Registered by the ``pytest11`` entry point, so installing hookbook makes
these fixtures available with no conftest::

    def test_my_consumer(simple_server, webhook_receiver, hookbook_client):
        hookbook_client.webhooks.register(webhook_receiver.url, secret=webhook_receiver.secret)
        hookbook_client.write_array([1, 2, 3], key="x")
        (delivery,) = webhook_receiver.wait_for(1, timeout=5)
        assert delivery.signature_valid

Fixtures (all function scope):

- ``webhook_receiver``: a running :class:`~hookbook.testing.WebhookReceiver`
  with a generated ``secret``.
- ``simple_server``: a :class:`~hookbook.server.SimpleServer` with webhooks
  on and the testing-mode retry schedule.
- ``hookbook_client``: ``from_uri(simple_server.uri)``, the root container.
- Settings, to override in a conftest: ``hookbook_retry_schedule``,
  ``hookbook_webhook_settings``, ``hookbook_server_kwargs``.

The marker ``@pytest.mark.hookbook_realtime`` gives ``simple_server`` the
production retry schedule (waits of about 1 s and 5 s).

This module imports only pytest, the standard library and the retry
schedules of :mod:`hookbook.webhooks.policy` (standard library only): the
receiver, the server and the client are imported inside the fixtures, so
loading the plugin costs nothing and never breaks a pytest run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from hookbook.webhooks.policy import DEFAULT_RETRY_SCHEDULE, TESTING_RETRY_SCHEDULE

if TYPE_CHECKING:
    from hookbook.server import SimpleServer
    from hookbook.testing.receiver import WebhookReceiver

__all__ = ["REALTIME_RETRY_SCHEDULE", "TESTING_RETRY_SCHEDULE"]

#: The production default (as Tiled): waits of about 1 s and 5 s.
REALTIME_RETRY_SCHEDULE = DEFAULT_RETRY_SCHEDULE

_REALTIME_MARKER = "hookbook_realtime"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_REALTIME_MARKER}: the simple_server fixture uses the production retry schedule "
        f"{list(REALTIME_RETRY_SCHEDULE)} (seconds) instead of the testing-mode one.",
    )


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running webhook receiver, new for every test, stopped after it.

    - scope: function (a new receiver on a new port per test, so no earlier
      test's webhooks can post to it)
    - type: :class:`hookbook.testing.WebhookReceiver`
    - default: ``WebhookReceiver(secret=secrets.token_hex(16))``; it verifies
      every delivery with that secret

    Example::

        def test_signed(hookbook_client, webhook_receiver):
            hookbook_client.webhooks.register(
                webhook_receiver.url, secret=webhook_receiver.secret
            )
            hookbook_client.write_array([1, 2, 3], key="x")
            (delivery,) = webhook_receiver.wait_for(1, timeout=5)
            assert delivery.signature_valid
    """
    from hookbook.testing.receiver import WebhookReceiver

    with WebhookReceiver(secret=secrets.token_hex(16)) as receiver:
        yield receiver


@pytest.fixture
def hookbook_retry_schedule() -> list[float]:
    """Seconds between delivery attempts for ``simple_server``: override to change.

    - scope: function (override with any scope)
    - type: ``list[float]``; attempts are ``len(schedule) + 1``
    - default: ``[0.01, 0.01]`` (testing mode: three attempts within milliseconds)

    Example, in a conftest.py::

        @pytest.fixture
        def hookbook_retry_schedule():
            return [0.01, 0.01, 0.01, 0.01]   # five attempts
    """
    return list(TESTING_RETRY_SCHEDULE)


@pytest.fixture
def hookbook_webhook_settings(hookbook_retry_schedule: list[float]) -> dict[str, Any]:
    """The ``webhooks=`` settings of ``simple_server``: override to change.

    Merged key by key over the harness defaults (``allow_http``,
    ``allow_private_addresses``, a generated ``secret_keys``).

    - scope: function (override with any scope)
    - type: ``dict[str, Any]``
    - default: ``{"retry_schedule": hookbook_retry_schedule}``

    Example, in a conftest.py::

        @pytest.fixture
        def hookbook_webhook_settings(hookbook_retry_schedule):
            return {"retry_schedule": hookbook_retry_schedule, "secret_keys": ["k" * 32]}
    """
    return {"retry_schedule": list(hookbook_retry_schedule)}


@pytest.fixture
def hookbook_server_kwargs() -> dict[str, Any]:
    """Extra keyword arguments for ``simple_server``'s ``SimpleServer``: override to change.

    Anything ``SimpleServer`` takes except ``enable_webhooks`` and ``webhooks``
    (use ``hookbook_webhook_settings`` for those).

    - scope: function (override with any scope)
    - type: ``dict[str, Any]``
    - default: ``{}``

    Example, in a conftest.py::

        @pytest.fixture
        def hookbook_server_kwargs(tmp_path):
            return {"directory": tmp_path / "catalog", "api_key": "secret"}
    """
    return {}


@pytest.fixture
def simple_server(
    request: pytest.FixtureRequest,
    hookbook_webhook_settings: dict[str, Any],
    hookbook_server_kwargs: dict[str, Any],
) -> Iterator[SimpleServer]:
    """A running hookbook server with webhooks on, new for every test, closed after it.

    - scope: function (start-up is fast)
    - type: :class:`hookbook.server.SimpleServer`
    - default: ``SimpleServer(enable_webhooks=True,
      webhooks=hookbook_webhook_settings, **hookbook_server_kwargs)``: a
      temporary directory, the testing-mode retry schedule ``[0.01, 0.01]``.
      With ``@pytest.mark.hookbook_realtime``, the retry schedule is the
      production one, ``[1, 5]``.

    Example::

        def test_history(simple_server, hookbook_client, webhook_receiver):
            hook = hookbook_client.webhooks.register(webhook_receiver.url)
            hookbook_client.write_array([1, 2, 3], key="x")
            simple_server.drain()
            (record,) = hookbook_client.webhooks.history(hook.id)
            assert record.outcome == "success"
    """
    from hookbook.server import SimpleServer

    clash = {"enable_webhooks", "webhooks"} & set(hookbook_server_kwargs)
    if clash:
        raise ValueError(
            f"hookbook_server_kwargs sets {sorted(clash)}: the simple_server fixture always "
            "enables webhooks; put webhook settings in the hookbook_webhook_settings fixture"
        )
    settings = dict(hookbook_webhook_settings)
    if request.node.get_closest_marker(_REALTIME_MARKER) is not None:
        settings["retry_schedule"] = list(REALTIME_RETRY_SCHEDULE)
    with SimpleServer(enable_webhooks=True, webhooks=settings, **hookbook_server_kwargs) as server:
        yield server


@pytest.fixture
def hookbook_client(simple_server: SimpleServer) -> Iterator[Any]:
    """A client of ``simple_server``: its root container, closed after the test.

    - scope: function
    - type: the root container returned by :func:`hookbook.client.from_uri`
    - default: ``from_uri(simple_server.uri)`` (authenticated with the
      server's admin API key)

    Example::

        def test_write(hookbook_client):
            hookbook_client.write_array([1, 2, 3], key="x")
            assert "x" in hookbook_client.keys()
    """
    from hookbook.client import from_uri

    client = from_uri(simple_server.uri)
    try:
        yield client
    finally:
        client.close()
