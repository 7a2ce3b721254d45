"""The ``hookbook`` command: ``serve``, ``demo``, ``receive`` and ``tutorials``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ._version import __version__
from .errors import ConfigurationError, HookbookError

if TYPE_CHECKING:
    from .config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .config import load_config
    from .db import is_sqlite
    from .server.app import CONFIG_ENV, create_app
    from .server.http import uvicorn_options

    settings = load_config(args.config)
    if args.worker_only:
        return _run_worker_only(settings)
    if args.processes < 1:
        raise ConfigurationError("--processes must be at least 1")
    if args.processes > 1 and is_sqlite(settings.database_url):
        raise ConfigurationError(
            "--processes > 1 needs PostgreSQL (database: postgresql+asyncpg://...): "
            "on SQLite one process serves a directory"
        )
    common: dict[str, Any] = {
        **uvicorn_options(settings),
        "host": args.host,
        "port": args.port,
        "timeout_graceful_shutdown": 5,
    }
    webhooks = "on" if settings.webhooks is not None else "off"

    def banner(port: int) -> str:
        dashboard = (
            f"; dashboard http://{args.host}:{port}/ui/" if settings.webhooks is not None else ""
        )
        return (
            f"hookbook {__version__} serving http://{args.host}:{port}/api/v1/ "
            f"with {args.processes} process(es) (directory {settings.directory}, "
            f"webhooks {webhooks}{dashboard}); Ctrl-C stops"
        )

    if args.processes > 1:
        print(banner(args.port), flush=True)
        # uvicorn's supervisor binds once and starts N processes on the socket;
        # each builds its own app (and delivery worker) from the config file.
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
        uvicorn.run(
            "hookbook.server.app:app_from_environment",
            factory=True,
            workers=args.processes,
            **common,
        )
    else:
        app = create_app(settings)
        server = _single_server(uvicorn.Config(app, **common), banner)
        try:
            server.run()
        except SystemExit:  # uvicorn exits when the lifespan fails: raise the app's error
            if app.state.startup_error is None:
                raise
        if app.state.startup_error is not None:
            raise app.state.startup_error
    print("hookbook stopped", flush=True)
    return 0


def _single_server(config: Any, banner: Any) -> Any:
    """A uvicorn server that prints where it listens once it does (``--port 0``
    shows the real port), and treats SIGINT and SIGTERM as a request to stop:
    it shuts down gracefully and returns, so the process exits with status 0
    (plain uvicorn re-raises the signal after shutting down)."""
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                port = self.servers[0].sockets[0].getsockname()[1]
                print(banner(port), flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


def _run_worker_only(settings: Settings) -> int:
    """Run the delivery worker with no HTTP server, until SIGINT or SIGTERM."""
    from .server.services import Services

    async def main() -> None:
        services = await Services.start(settings)
        if services.worker is None:
            await services.stop()
            raise HookbookError("--worker-only needs a webhooks section in the config")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"hookbook {__version__} delivery worker running (pid {os.getpid()})", flush=True)
        try:
            await stop.wait()
        finally:
            await services.stop()
        print("hookbook worker stopped", flush=True)

    asyncio.run(main())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(show_json=args.json, ui=args.ui)


def _tutorials(args: argparse.Namespace) -> int:
    from .tutorials import HOW_TO_OPEN, copy_tutorials

    copied = copy_tutorials(args.folder, force=args.force)
    print(f"Copied {len(copied)} tutorial notebooks into {Path(args.folder).resolve()}:")
    for path in copied:
        print(f"  {path.name}")
    print("They are MyST Markdown notebooks: Jupyter opens them through jupytext. To run them:")
    for line in HOW_TO_OPEN:
        print(f"  {line.format(folder=args.folder)}")
    print(
        "then, in JupyterLab, right-click a file and choose Open With > Notebook. "
        f"Start with {copied[0].name}."
    )
    return 0


def _receive(args: argparse.Namespace) -> int:
    from .testing.console import run_receiver

    run_receiver(args.port, secret=args.secret, status=args.status, show_json=args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookbook", description="Catalog webhooks: serve, demo, receive, tutorials."
    )
    parser.add_argument("--version", action="version", version=f"hookbook {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a server from a YAML config file")
    serve.add_argument("--config", required=True, help="the YAML config file")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="default: 8000")
    serve.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes sharing the port and the outbox (PostgreSQL only)",
    )
    serve.add_argument(
        "--worker-only", action="store_true", help="deliver webhooks only, serve no HTTP"
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="the whole webhook flow, in-process, as tables")
    demo.add_argument("--json", action="store_true", help="also print each payload")
    demo.add_argument(
        "--ui",
        action="store_true",
        help="then keep the server and receiver running to open the dashboard and the "
        "inspector in a browser (Ctrl-C stops)",
    )
    demo.set_defaults(func=_demo)

    tutorials = sub.add_parser(
        "tutorials", help="copy the tutorial notebooks into a folder to open in Jupyter"
    )
    tutorials.add_argument(
        "folder", nargs="?", default="hookbook-tutorials", help="default: ./hookbook-tutorials"
    )
    tutorials.add_argument("--force", action="store_true", help="overwrite files already there")
    tutorials.set_defaults(func=_tutorials)

    receive = sub.add_parser("receive", help="print the webhook deliveries a port receives")
    receive.add_argument("--port", type=int, default=9000, help="default: 9000")
    receive.add_argument("--secret", default=None, help="verify signatures with this secret")
    receive.add_argument(
        "--status", type=int, default=200, help="answer every delivery with this status"
    )
    receive.add_argument("--json", action="store_true", help="print each JSON body")
    receive.set_defaults(func=_receive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return cast(int, args.func(args))
    except HookbookError as exc:
        print(f"hookbook: error: {exc.detail or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
