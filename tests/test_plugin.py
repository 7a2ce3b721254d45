"""The pytest plugin, used as a user uses it: pytester runs a user's test file.

The plugin comes from the installed ``pytest11`` entry point; no test file
here loads it by hand. The wiring tests replace ``SimpleServer`` with a
recording stand-in (in the user's conftest) to check exactly what the
fixtures pass; the end-to-end tests run the real server, client and receiver.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

# Imported here, in this process: an in-process pytester run drops the modules
# first imported during it, and a later import would then make a second copy
# (with its own classes) beside the one hookbook.testing already handed out.
import hookbook.testing.receiver  # noqa: F401

pytest_plugins = ["pytester"]

# A strict user: warnings are errors, markers must be registered.
STRICT_INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""

# Replaces SimpleServer with a stand-in that records its keyword arguments.
RECORDING_CONFTEST = """
import pytest

import hookbook.server


class RecordingServer:
    instances = []

    def __init__(self, directory=None, **kwargs):
        self.kwargs = dict(kwargs, directory=directory)
        self.uri = "http://127.0.0.1:1/api/v1?api_key=fake"
        self.closed = False
        RecordingServer.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


@pytest.fixture(autouse=True)
def _recording_server(monkeypatch):
    # setitem, not setattr: reading the old value must not import the real server.
    monkeypatch.setitem(vars(hookbook.server), "SimpleServer", RecordingServer)
    return RecordingServer
"""


@pytest.fixture
def strict(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(STRICT_INI)
    return pytester


# --------------------------------------------------------------------------- #
# Loading the plugin
# --------------------------------------------------------------------------- #


def test_importing_the_plugin_is_cheap() -> None:
    heavy = [
        "hookbook.server",
        "hookbook.harness",
        "hookbook.client",
        "hookbook.testing.receiver",
        "fastapi",
        "werkzeug",
        "pytest_httpserver",
        "numpy",
        "httpx",
        "rich",
        "pydantic",
        "yaml",
    ]
    code = (
        "import json, sys\n"
        "import hookbook.testing.plugin\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def test_registered_by_entry_point(strict: pytest.Pytester) -> None:
    fixtures = strict.runpytest("--fixtures")
    fixtures.stdout.fnmatch_lines(
        [
            "*fixtures defined from hookbook.testing.plugin*",
            "*webhook_receiver*",
            "*A running webhook receiver, new for every test*",
        ]
    )
    for name in (
        "simple_server",
        "hookbook_client",
        "hookbook_retry_schedule",
        "hookbook_webhook_settings",
        "hookbook_server_kwargs",
    ):
        assert name in fixtures.stdout.str()
    markers = strict.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.hookbook_realtime: *production retry schedule*"])


def test_disabling_the_plugin_by_name(strict: pytest.Pytester) -> None:
    strict.makepyfile("def test_it(webhook_receiver):\n    pass\n")
    result = strict.runpytest("-p", "no:hookbook")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'webhook_receiver' not found*"])


# --------------------------------------------------------------------------- #
# webhook_receiver and the settings fixtures (no server needed)
# --------------------------------------------------------------------------- #


def test_webhook_receiver_is_new_per_test_and_stopped_after(strict: pytest.Pytester) -> None:
    strict.makepyfile(
        """
        import re
        import urllib.request

        seen = []

        def test_one(webhook_receiver):
            assert webhook_receiver.running
            assert re.fullmatch("[0-9a-f]{32}", webhook_receiver.secret)
            # urllib, not httpx: this run is in-process (see the imports above).
            urllib.request.urlopen(webhook_receiver.url, data=b'{"type": "ping"}').close()
            (delivery,) = webhook_receiver.deliveries
            assert delivery.event_type == "ping"
            assert delivery.signature_valid is False  # unsigned, and it has a secret
            seen.append(webhook_receiver)

        def test_two(webhook_receiver):
            (first,) = seen
            assert not first.running
            assert webhook_receiver is not first
            assert webhook_receiver.secret != first.secret
            assert webhook_receiver.deliveries == []
        """
    )
    strict.runpytest().assert_outcomes(passed=2)


def test_settings_fixture_defaults(strict: pytest.Pytester) -> None:
    strict.makepyfile(
        """
        def test_defaults(hookbook_retry_schedule, hookbook_webhook_settings,
                          hookbook_server_kwargs):
            assert hookbook_retry_schedule == [0.01, 0.01]
            assert hookbook_webhook_settings == {"retry_schedule": [0.01, 0.01]}
            assert hookbook_server_kwargs == {}
        """
    )
    strict.runpytest().assert_outcomes(passed=1)


def test_simple_server_wiring(strict: pytest.Pytester) -> None:
    strict.makeconftest(RECORDING_CONFTEST)
    strict.makepyfile(
        """
        def test_server(simple_server, _recording_server):
            (server,) = _recording_server.instances
            assert simple_server is server
            assert server.kwargs == {
                "directory": None,
                "enable_webhooks": True,
                "webhooks": {"retry_schedule": [0.01, 0.01]},
            }

        def test_closed_after(_recording_server):
            assert _recording_server.instances
            assert all(s.closed for s in _recording_server.instances)
        """
    )
    strict.runpytest().assert_outcomes(passed=2)


def test_overriding_settings_in_a_conftest(strict: pytest.Pytester) -> None:
    strict.makeconftest(
        RECORDING_CONFTEST
        + textwrap.dedent(
            """
            @pytest.fixture
            def hookbook_retry_schedule():
                return [0.02, 0.03, 0.04]

            @pytest.fixture
            def hookbook_server_kwargs(tmp_path):
                return {"directory": tmp_path / "catalog", "api_key": "k"}
            """
        )
    )
    strict.makepyfile(
        """
        def test_overridden(simple_server):
            assert simple_server.kwargs["webhooks"] == {"retry_schedule": [0.02, 0.03, 0.04]}
            assert simple_server.kwargs["api_key"] == "k"
            assert simple_server.kwargs["directory"].name == "catalog"
            assert simple_server.kwargs["enable_webhooks"] is True
        """
    )
    strict.runpytest().assert_outcomes(passed=1)


def test_overriding_webhook_settings_in_a_conftest(strict: pytest.Pytester) -> None:
    strict.makeconftest(
        RECORDING_CONFTEST
        + textwrap.dedent(
            """
            @pytest.fixture
            def hookbook_webhook_settings(hookbook_retry_schedule):
                return {"retry_schedule": hookbook_retry_schedule, "blocked_networks": []}
            """
        )
    )
    strict.makepyfile(
        """
        def test_overridden(simple_server):
            assert simple_server.kwargs["webhooks"] == {
                "retry_schedule": [0.01, 0.01],
                "blocked_networks": [],
            }
        """
    )
    strict.runpytest().assert_outcomes(passed=1)


def test_realtime_marker(strict: pytest.Pytester) -> None:
    strict.makeconftest(
        RECORDING_CONFTEST
        + textwrap.dedent(
            """
            @pytest.fixture
            def hookbook_webhook_settings():
                return {"retry_schedule": [0.5], "allow_http": True}
            """
        )
    )
    strict.makepyfile(
        """
        import pytest

        @pytest.mark.hookbook_realtime
        def test_marked(simple_server):
            assert simple_server.kwargs["webhooks"] == {
                "retry_schedule": [1, 5],
                "allow_http": True,
            }

        def test_unmarked(simple_server):
            assert simple_server.kwargs["webhooks"]["retry_schedule"] == [0.5]

        @pytest.mark.hookbook_realtime
        class TestMarkedClass:
            def test_in_class(self, simple_server):
                assert simple_server.kwargs["webhooks"]["retry_schedule"] == [1, 5]
        """
    )
    strict.runpytest().assert_outcomes(passed=3)


def test_webhook_settings_in_server_kwargs_are_refused(strict: pytest.Pytester) -> None:
    strict.makeconftest(
        RECORDING_CONFTEST
        + textwrap.dedent(
            """
            @pytest.fixture
            def hookbook_server_kwargs():
                return {"webhooks": {"retry_schedule": [1]}}
            """
        )
    )
    strict.makepyfile("def test_it(simple_server):\n    pass\n")
    result = strict.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*put webhook settings in the hookbook_webhook_settings fixture*"])


# --------------------------------------------------------------------------- #
# End to end: the real server, client and receiver
#
# One user project, run once in a subprocess: an in-process run removes the
# modules it imported when it ends, and numpy (like the PyO3 extensions)
# cannot be loaded twice in one process; and a fresh interpreter spends most
# of its time importing the server, so one run for all scenarios keeps it fast.
# --------------------------------------------------------------------------- #

USER_PROJECT = {
    # The example, with no conftest.
    "test_example.py": """
        def test_my_consumer(simple_server, webhook_receiver, hookbook_client):
            hookbook_client.webhooks.register(
                webhook_receiver.url, secret=webhook_receiver.secret
            )
            hookbook_client.write_array([1, 2, 3], key="x")
            (delivery,) = webhook_receiver.wait_for(1, timeout=5)
            assert delivery.signature_valid
            assert delivery.event_type == "container-child-created"
            assert delivery.key == "x"
        """,
    # fail_next(2): three attempts in the server's history, in testing mode.
    "test_retries.py": """
        def test_retries(simple_server, webhook_receiver, hookbook_client):
            webhook_receiver.fail_next(2)
            hook = hookbook_client.webhooks.register(
                webhook_receiver.url, secret=webhook_receiver.secret
            )
            hookbook_client.write_array([1, 2, 3], key="x")

            attempts = webhook_receiver.wait_for(3, timeout=5)
            assert [d.status_sent for d in attempts] == [500, 500, 200]
            assert len({d.event_id for d in attempts}) == 1
            assert all(d.signature_valid for d in attempts)
            assert len(webhook_receiver.unique()) == 1

            simple_server.drain()
            (record,) = hookbook_client.webhooks.history(hook.id)
            assert record.attempts == 3
            assert record.outcome == "success"
            assert record.status_code == 200
        """,
    # A wait that times out fails with what did arrive.
    "test_timeout.py": """
        def test_expects_two(webhook_receiver, hookbook_client):
            hookbook_client.webhooks.register(webhook_receiver.url)
            hookbook_client.write_array([1, 2, 3], key="only_one")
            webhook_receiver.wait_for(1, timeout=10)
            webhook_receiver.wait_for(2, timeout=0.2)
        """,
    # The marker works with the real server (its schedule: test_realtime_marker).
    "test_realtime.py": """
        import pytest

        @pytest.mark.hookbook_realtime
        def test_marked(simple_server, webhook_receiver, hookbook_client):
            hookbook_client.webhooks.register(webhook_receiver.url)
            hookbook_client.write_array([1, 2, 3], key="x")
            (delivery,) = webhook_receiver.wait_for(1, timeout=5)
            assert delivery.accepted
        """,
    # A schedule overridden in a conftest reaches the server: two attempts, then failed.
    "override/conftest.py": """
        import pytest

        @pytest.fixture
        def hookbook_retry_schedule():
            return [0.01]
        """,
    "override/test_override.py": """
        def test_gives_up_after_two(simple_server, webhook_receiver, hookbook_client):
            webhook_receiver.fail_next(5)
            hook = hookbook_client.webhooks.register(webhook_receiver.url)
            hookbook_client.write_array([1, 2, 3], key="x")
            simple_server.drain()
            (record,) = hookbook_client.webhooks.history(hook.id)
            assert record.attempts == 2
            assert record.outcome == "failed"
            assert [d.status_sent for d in webhook_receiver.deliveries] == [500, 500]
        """,
}


def test_a_user_project_end_to_end(strict: pytest.Pytester) -> None:
    for name, source in USER_PROJECT.items():
        path = strict.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))

    result = strict.runpytest_subprocess("-rA")

    output = result.stdout.str()
    outcomes = dict(
        (match.group(2), match.group(1))
        for match in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+::\S+)", output, re.MULTILINE)
    )
    assert outcomes == {
        "test_example.py::test_my_consumer": "PASSED",
        "test_retries.py::test_retries": "PASSED",
        "test_timeout.py::test_expects_two": "FAILED",
        "test_realtime.py::test_marked": "PASSED",
        "override/test_override.py::test_gives_up_after_two": "PASSED",
    }, output
    result.stdout.fnmatch_lines(
        [
            "*TimeoutError: waited 0.2 s for 2 deliveries at http://127.0.0.1:*; "
            "1 matched, 1 arrived:",
            "*1. POST /webhook type=container-child-created path=only_one event_id=* -> 200",
        ]
    )
