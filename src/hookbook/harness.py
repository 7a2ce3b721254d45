"""``SimpleServer``: the whole server, in-process, on a background thread.

For tutorials and tests::

    with SimpleServer(enable_webhooks=True) as server:
        client = from_uri(server.uri)

The socket is bound here, in the caller, so the port is known at once; uvicorn
serves it on a thread with its own event loop. The constructor returns when
the app answers requests, or raises the server's own start-up error.

``enable_webhooks=True`` relaxes the target rules for local development
(``allow_http`` and ``allow_private_addresses``, so a receiver on 127.0.0.1
can be registered) and says so in the log. The production defaults of
``hookbook serve`` refuse both.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import uvicorn

from .config import parse_settings
from .server.app import create_app
from .server.http import uvicorn_options
from .server.services import Seams
from .webhooks.secrets import generate_key

logger = logging.getLogger(__name__)

STATE_FILE = "hookbook-harness.json"

#: The webhook settings ``enable_webhooks=True`` starts from (local development only).
HARNESS_WEBHOOK_DEFAULTS: dict[str, Any] = {
    "allow_http": True,
    "allow_private_addresses": True,
}


def _load_state(directory: Path) -> dict[str, str]:
    path = directory / STATE_FILE
    if path.exists():
        return cast(dict[str, str], json.loads(path.read_text()))
    return {}


def _save_state(directory: Path, state: Mapping[str, str]) -> None:
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(state), fh, indent=2)
    os.replace(tmp, path)


class _Server(uvicorn.Server):
    """uvicorn's server, with a main loop that wakes at once when asked to stop.

    uvicorn checks ``should_exit`` every 0.1 s; :meth:`stop` sets it and wakes
    the loop, so ``close()`` does not wait for the next tick.
    """

    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            try:
                await asyncio.wait_for(self._wake.wait(), 0.1)
            except TimeoutError:
                pass
            should_exit = await self.on_tick(counter)

    def stop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Ask the server to exit (from any thread)."""
        self.should_exit = True
        wake = self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has already closed
                pass


class SimpleServer:
    """A hookbook server on a background thread, on embedded storage by default.

    Parameters
    ----------
    directory:
        Where the catalog lives. ``None``: a temporary directory, removed on
        close. A given directory persists, with the API key and secret key
        generated for it, so a new server on it sees the old catalog, webhooks
        and pending deliveries.
    api_key:
        The admin key (all scopes); generated (and stored) when not given.
    port:
        0 picks a free port.
    enable_webhooks:
        Mount the webhook routes, with the local-development defaults.
    webhooks:
        Webhook settings merged key by key over those defaults (implies
        ``enable_webhooks``), e.g. ``{"retry_schedule": [0.01, 0.01]}``.
    api_keys:
        More keys with narrower scopes: ``[{"key": ..., "scopes": [...]}]``.
    database:
        A SQLAlchemy URL (e.g. PostgreSQL); default SQLite in the directory.
    storage:
        Storage settings (``retire_after``, ``sweep_after``, ``compact_on_close``),
        e.g. ``{"retire_after": 0}`` to remove replaced data at once.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        api_key: str | None = None,
        port: int = 0,
        enable_webhooks: bool = False,
        webhooks: Mapping[str, Any] | None = None,
        api_keys: Sequence[Mapping[str, Any]] | None = None,
        database: str | None = None,
        storage: Mapping[str, Any] | None = None,
        startup_timeout: float = 30.0,
        seams: Seams | None = None,
    ) -> None:
        self._temporary = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="hookbook-") if directory is None else directory
        ).resolve()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            self._start(
                api_key=api_key,
                port=port,
                webhooks=webhooks if webhooks is not None else ({} if enable_webhooks else None),
                api_keys=api_keys or (),
                database=database,
                storage=storage or {},
                startup_timeout=startup_timeout,
                seams=seams,
            )
        except BaseException:
            self._cleanup()
            raise

    def _start(
        self,
        *,
        api_key: str | None,
        port: int,
        webhooks: Mapping[str, Any] | None,
        api_keys: Sequence[Mapping[str, Any]],
        database: str | None,
        storage: Mapping[str, Any],
        startup_timeout: float,
        seams: Seams | None,
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = _load_state(self.directory)
        changed = False
        if api_key is None:
            if "api_key" not in state:
                state["api_key"] = secrets.token_hex(16)
                changed = True
            api_key = state["api_key"]
        self.api_key = api_key
        webhook_settings = None
        self.webhook_secret_key: str | None = None
        if webhooks is not None:
            if "secret_key" not in state:
                state["secret_key"] = generate_key()
                changed = True
            webhook_settings = {
                **HARNESS_WEBHOOK_DEFAULTS,
                "secret_keys": [state["secret_key"]],
                **dict(webhooks),
            }
        if changed:
            _save_state(self.directory, state)
        self.settings = parse_settings(
            {
                "directory": str(self.directory),
                "database": database,
                "api_keys": [{"key": api_key, "scopes": ["admin"]}, *api_keys],
                "webhooks": webhook_settings,
                "storage": dict(storage),
                "lock_directory": True,
            }
        )
        if self.settings.webhooks is not None:
            self.webhook_secret_key = self.settings.webhooks.secret_keys[0]
        self.app = create_app(self.settings, seams=seams)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose
        # proto says TCP; with proto 0, Nagle + delayed ACK add ~40 ms per request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, **uvicorn_options(self.settings), timeout_graceful_shutdown=2
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"hookbook-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                break
            if time.monotonic() > deadline:
                self._server.should_exit = True
                raise TimeoutError(f"hookbook server did not start within {startup_timeout} s")
            self._thread.join(0.002)
        error = self.app.state.startup_error
        if error is not None or not self._server.started:
            self._thread.join(5)
            if error is not None:
                raise error
            raise RuntimeError("hookbook server stopped during start-up; see the log")

    def _serve(self, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[sock])

        try:
            asyncio.run(main())
        except SystemExit:
            # uvicorn exits when the lifespan fails; the caller re-raises the
            # app's own error (app.state.startup_error), so the thread ends quietly.
            pass
        finally:
            sock.close()

    # ---- public -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"{self.base_url}/api/v1?api_key={self.api_key}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address, with a one-time sign-in token (as Jupyter prints one).

        The token signs a browser in once, within a minute, as the admin key; it is
        never the API key itself. Each read of this attribute makes a new one.
        """
        if self._closed:
            raise RuntimeError("the server is closed: it has no dashboard")
        if self.settings.webhooks is None:
            raise RuntimeError(
                "the dashboard is mounted with the webhook routes: start the server with "
                "enable_webhooks=True"
            )
        from .server.ui.sessions import SessionStore

        store = SessionStore(self.app.state.services.db, self.settings.api_keys)
        token = self.run(store.issue_token(self.settings.api_keys[0]))
        return f"{self.base_url}/ui/?token={token}"

    def drain(self, timeout: float = 10.0) -> None:
        """Return when every delivery has settled; raise ``TimeoutError`` listing
        the ones still pending after ``timeout`` seconds."""
        worker = self.app.state.services.worker
        if worker is None:
            raise RuntimeError("webhooks are not enabled on this server: nothing to drain")
        self.run(worker.drain(timeout), timeout + 5)

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's event loop (for tests and tools)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]  # set once started

    def close(self) -> None:
        """Stop the server (pending deliveries stay in the outbox)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.stop(self._loop)
            self._thread.join(10)
            if self._thread.is_alive():
                logger.warning("hookbook server thread did not stop within 10 s")
        self._cleanup()

    def _cleanup(self) -> None:
        self._closed = True
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SimpleServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        if not getattr(self, "_closed", True) and getattr(self, "_thread", None) is not None:
            self._server.should_exit = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<SimpleServer {self.base_url} {state} directory={str(self.directory)!r}>"

    def _repr_html_(self) -> str:
        rows = {
            "URI": self.uri,
            "Directory": str(self.directory),
            "Webhooks": "on" if self.settings.webhooks is not None else "off",
            "State": "closed" if self._closed else "running",
        }
        if self.settings.webhooks is not None:
            rows["Retry schedule (s)"] = ", ".join(
                f"{w:g}" for w in self.settings.webhooks.retry_schedule
            )
        cells = {k: f"<code>{html.escape(v)}</code>" for k, v in rows.items()}
        if self.settings.webhooks is not None and not self._closed:
            link = html.escape(self.dashboard_url)
            cells["Dashboard"] = (
                f"<a href='{link}' target='_blank' rel='noopener'>open the dashboard</a> "
                "(the link signs in once, within a minute)"
            )
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{v}</td></tr>"
            for k, v in cells.items()
        )
        return f"<table><caption>hookbook SimpleServer</caption>{body}</table>"
