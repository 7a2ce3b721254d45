"""Shared fixtures: a fresh PostgreSQL database per test, and small helpers.

PostgreSQL tests use ``HOOKBOOK_TEST_POSTGRES`` (default: the local server,
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). Each test creates its
own database and drops it afterwards. Without a reachable server they skip,
saying why; under ``CI=true`` that is a failure instead. :func:`unavailable`
is that one rule, for every test dependency that may be missing (PostgreSQL,
Chromium, the test extras such as ``tiled``: :func:`require`).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import NoReturn

import pytest

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _pg_base() -> str:
    return os.environ.get("HOOKBOOK_TEST_POSTGRES", DEFAULT_PG)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(_pg_base()), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def unavailable(reason: str, *, needed_by: str) -> NoReturn:
    """Skip, saying why, when something a test needs is missing; under ``CI=true``
    fail instead (CI has everything). Works in a test, a fixture or at module level."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{needed_by} are required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{needed_by} skipped: {reason}", allow_module_level=True)


def require(module: str, *, install: str = "pip install -e '.[test]'") -> ModuleType:
    """Import a test dependency (``pytest.importorskip``, but failing under ``CI=true``)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        unavailable(f"{module} cannot be imported ({error}): {install}", needed_by="the tests")


def _unavailable(reason: str) -> NoReturn:
    unavailable(f"{reason}; set HOOKBOOK_TEST_POSTGRES", needed_by="the PostgreSQL tests")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test (dropped afterwards)."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _unavailable("asyncpg is not installed (install hookbook[postgres])")
    name = f"hookbook_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable(f"cannot create a database at {_pg_base()}: {exc}")
    base = _pg_base()
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def reserved_port() -> Iterator[int]:
    """A port bound (``SO_REUSEADDR``) and held for the test, never listened on.

    Connections to it are refused; a server that also sets ``SO_REUSEADDR``
    (``WebhookReceiver``, ``SimpleServer``) may listen on it, stop and listen
    again, while no other socket can take it in between: a port is never
    released and used again by number.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.005, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value, or fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {message}")
        time.sleep(interval)
