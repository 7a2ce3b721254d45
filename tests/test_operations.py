"""Operations endpoints: Prometheus metrics that move with deliveries, and health."""

from __future__ import annotations

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver


def _metrics(server: SimpleServer) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{server.base_url}/metrics", params={"api_key": server.api_key})
    response.raise_for_status()
    text = response.text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_move_as_deliveries_happen() -> None:
    with (
        WebhookReceiver() as ok,
        WebhookReceiver() as bad,
        WebhookReceiver() as gone,
        SimpleServer(webhooks={"retry_schedule": [0.01], "auto_disable_after": 0}) as server,
    ):
        before = _metrics(server)
        assert before[("hookbook_outbox_deliveries", (("state", "success"),))] == 0
        assert before[("hookbook_webhooks", ())] == 0
        client = from_uri(server.uri)
        hooks = [client.webhooks.register(r.url).id for r in (ok, bad, gone)]
        bad.fail_next(100, status=503)
        gone.gone()
        for i in range(3):
            client.write_array(np.arange(3), key=f"a{i}")
        server.drain()
        after = _metrics(server)
        outcomes = [d.outcome for h in hooks for d in client.webhooks.history(h)]
        client.close()
    assert after[("hookbook_outbox_deliveries", (("state", "success"),))] == 3
    assert after[("hookbook_outbox_deliveries", (("state", "failed"),))] == outcomes.count("failed")
    assert outcomes.count("failed") >= 4  # 3 to the failing endpoint, >= 1 to the gone one
    assert after[("hookbook_outbox_deliveries", (("state", "pending"),))] == 0
    assert after[("hookbook_outbox_oldest_pending_seconds", ())] == 0
    assert after[("hookbook_webhooks", ())] == 3
    assert after[("hookbook_webhooks_disabled", ())] == 1  # 410 Gone disables
    assert after[("hookbook_delivery_attempts_total", (("result", "2xx"),))] == 3
    assert after[("hookbook_delivery_attempts_total", (("result", "5xx"),))] == 6
    assert after[("hookbook_delivery_attempts_total", (("result", "4xx"),))] >= 1
    assert after[("hookbook_deliveries_settled_total", (("outcome", "success"),))] == 3
    assert after[("hookbook_attempt_duration_seconds_count", ())] >= 10


def test_oldest_pending_age_is_reported() -> None:
    with SimpleServer(webhooks={"retry_schedule": [60]}) as server:
        client = from_uri(server.uri)
        client.webhooks.register("http://127.0.0.1:9/")  # nothing listens on port 9
        client.create_container("c")
        key = ("hookbook_delivery_attempts_total", (("result", "transport_error"),))
        metrics = wait_until(
            lambda: (m := _metrics(server)).get(key) and m, message="first attempt failed"
        )
        assert metrics[("hookbook_outbox_deliveries", (("state", "pending"),))] == 1
        assert metrics[("hookbook_outbox_oldest_pending_seconds", ())] > 0
        client.close()


OPERATOR = "operator_key_0123456789"
READER = "reader_key_0123456789"


def test_health_reports_the_worker_to_a_key_with_read_operations() -> None:
    keys = [{"key": OPERATOR, "scopes": ["read:operations"]}]
    with SimpleServer(enable_webhooks=True, api_keys=keys) as server:
        for key in (server.api_key, OPERATOR):
            health = httpx.get(f"{server.base_url}/healthz", params={"api_key": key}).json()
            assert health["status"] == "ok"
            assert health["database"] == "sqlite"
            assert health["worker"]["state"] == "running"
            assert health["worker"]["in_flight"] == 0
            assert health["listener"] is None  # LISTEN/NOTIFY is for PostgreSQL
    with SimpleServer() as server:
        health = httpx.get(f"{server.base_url}/healthz", params={"api_key": server.api_key})
        assert health.json()["webhooks"] is False and health.json()["worker"] is None


def test_without_read_operations_health_says_only_that_the_server_is_up() -> None:
    keys = [{"key": READER, "scopes": ["read:metadata", "read:webhooks"]}]
    with (
        WebhookReceiver() as receiver,
        SimpleServer(enable_webhooks=True, api_keys=keys) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url)
        for params in ({}, {"api_key": READER}):
            response = httpx.get(f"{server.base_url}/healthz", params=params)
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
        wrong = httpx.get(f"{server.base_url}/healthz", params={"api_key": "wrong_key_123"})
        assert wrong.status_code == 401


def test_metrics_need_read_operations() -> None:
    keys = [
        {"key": READER, "scopes": ["read:metadata", "read:webhooks"]},
        {"key": OPERATOR, "scopes": ["read:operations"]},
    ]
    with SimpleServer(enable_webhooks=True, api_keys=keys) as server:
        url = f"{server.base_url}/metrics"
        assert httpx.get(url).status_code == 401
        refused = httpx.get(url, params={"api_key": READER})
        assert refused.status_code == 403
        assert "read:operations" in refused.json()["detail"]
        allowed = httpx.get(url, headers={"Authorization": f"Apikey {OPERATOR}"})
        assert allowed.status_code == 200
        assert "hookbook_outbox_deliveries" in allowed.text


def test_a_database_outage_is_a_503_not_a_500() -> None:
    import sqlalchemy.exc

    with SimpleServer() as server:
        store = server.app.state.services.store

        async def refuse(*args, **kwargs):
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("too many clients"))

        store.get = refuse
        response = httpx.get(
            f"{server.base_url}/api/v1/metadata/x",
            headers={"Authorization": f"Apikey {server.api_key}"},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database is unavailable" in response.json()["detail"]
