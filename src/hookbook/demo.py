"""``hookbook demo``: the whole webhook flow in one command, printed as tables.

:func:`run_demo` starts a :class:`~hookbook.testing.WebhookReceiver` and a
:class:`~hookbook.server.SimpleServer` in this process (embedded storage, a
temporary directory), registers a webhook with a signing secret on the root,
and makes one change of every kind: a container, an array (appended to, then
its stream closed), a table (when pyarrow is installed: ``hookbook[tables]``)
and a metadata update. It then waits (bounded) for the deliveries and prints
what the receiver got and what the server's delivery history says. The
receiver refuses the first delivery once, so the history shows a retry.

Nothing is left behind: the server's temporary directory is removed and both
servers are stopped before it returns. With ``ui=True`` (``hookbook demo --ui``)
both keep running after the tables, and the demo prints the addresses of the
server's dashboard and the receiver's inspector, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["run_demo"]

#: How long the demo waits for its deliveries before giving up, in seconds.
WAIT_TIMEOUT = 15.0
#: Seconds between attempts: short, so the one retry the demo shows is quick.
DEMO_RETRY_SCHEDULE = (0.2, 1.0)


def _tables_available() -> bool:
    """Whether table writes work here (they need pyarrow: ``pip install hookbook[tables]``)."""
    return importlib.util.find_spec("pyarrow") is not None


def _path_text(path: Sequence[str] | None) -> str:
    if path is None:
        return "-"
    return "/".join(path) or "(root)"


def _short(event_id: str | None) -> str:
    """The first 8 hex digits of an event id (enough to tell the demo's events apart)."""
    return event_id[:8] if event_id else "-"


def _signature(delivery: Any) -> Text:
    if delivery.signature_valid is None:
        return Text("not checked", style="dim")
    if delivery.signature_valid:
        return Text("valid", style="green")
    return Text(f"INVALID: {delivery.signature_error}", style="bold red")


def _table(title: str) -> Table:
    # No column rules: the widest event type is 32 characters, and both tables
    # should fit an 80-column terminal.
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )


def _deliveries_table(deliveries: Sequence[Any]) -> Table:
    table = _table("What the receiver got (every request, retries included)")
    table.add_column("#", justify="right")
    table.add_column("event type", style="magenta", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("event id", no_wrap=True)
    table.add_column("verified")
    table.add_column("HTTP", justify="right")
    for number, d in enumerate(deliveries, start=1):
        status = "reset" if d.status_sent is None else str(d.status_sent)
        table.add_row(
            str(number),
            d.event_type or "-",
            _path_text(d.node_path),
            _short(d.event_id),
            _signature(d),
            Text(status, style="green" if d.accepted else "yellow"),
        )
    return table


def _history_table(history: Sequence[Any]) -> Table:
    table = _table("The server's delivery history (oldest first)")
    table.add_column("id", justify="right")
    table.add_column("event type", style="magenta", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("outcome")
    table.add_column("attempts", justify="right")
    table.add_column("HTTP", justify="right")
    for record in sorted(history, key=lambda r: r.id):
        style = {"success": "green", "failed": "bold red"}.get(record.outcome, "yellow")
        table.add_row(
            str(record.id),
            record.event_type,
            _path_text(record.payload.get("path")),
            Text(record.outcome, style=style),
            str(record.attempts),
            "-" if record.status_code is None else str(record.status_code),
        )
    return table


def _write_entries(client: Any, console: Console) -> list[str]:
    """Make one catalog change of every kind; return what was done, one line per event."""
    import numpy as np

    done = []
    run = client.create_container("run1", metadata={"sample": "silicon", "status": "running"})
    done.append("created container run1")
    temperature = run.write_array(np.array([20.5, 21.0, 21.7]), key="temperature")
    done.append("wrote array run1/temperature (3 values)")
    if _tables_available():
        run.write_table(
            {"x": [0.0, 0.5, 1.0], "counts": [12, 40, 33]},
            key="positions",
        )
        done.append("wrote table run1/positions (2 columns, 3 rows)")
    else:
        console.print(
            Text(
                "Skipping the table: writing tables needs pyarrow, which the core install "
                "leaves out (pip install 'hookbook[tables]').",
                style="yellow",
            )
        )
    temperature.append([22.4])
    temperature.close_stream()
    done.append("appended a value to run1/temperature, then closed its stream")
    run.update_metadata(metadata={"sample": "silicon", "status": "done"})
    done.append("updated run1's metadata (status: done)")
    return done


@contextlib.contextmanager
def _quiet_relaxed_rules_warning() -> Iterator[None]:
    """Quiets the server's log warning about the relaxed local-development rules
    (its own logger): the demo says the same in its own words, so the log need
    not repeat it mid-output."""
    from .webhooks.service import RELAXED_RULES_LOGGER

    notice = logging.getLogger(RELAXED_RULES_LOGGER)
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notice.setLevel(level)


def run_demo(
    show_json: bool = False,
    console: Console | None = None,
    *,
    ui: bool = False,
    stop_event: threading.Event | None = None,
) -> int:
    """Run the register -> write -> deliver -> history flow in-process and print it.

    Returns 0 when every event was delivered, with a valid signature, and the
    history agrees; 1 otherwise (saying what went wrong). ``show_json`` also
    prints each payload. ``console`` defaults to a new :class:`rich.console.Console`.
    With ``ui``, the server and the receiver then keep running, and their pages'
    addresses are printed, until Ctrl-C (or until ``stop_event`` is set).
    """
    with _quiet_relaxed_rules_warning():
        return _run(show_json, console, ui=ui, stop_event=stop_event)


def _run(
    show_json: bool, console: Console | None, *, ui: bool, stop_event: threading.Event | None
) -> int:
    from .client import from_uri
    from .server import SimpleServer
    from .testing import WebhookReceiver

    console = console if console is not None else Console()
    secret = secrets.token_hex(16)
    started = time.perf_counter()
    console.rule("hookbook demo")
    console.print(
        "A webhook receiver and a hookbook server start in this process, on embedded storage "
        "in a temporary directory. The server's local-development rules let it deliver to "
        "http://127.0.0.1 (production refuses both plain http and private addresses)."
    )
    with contextlib.ExitStack() as running:
        receiver = running.enter_context(WebhookReceiver(secret=secret))
        server = running.enter_context(
            SimpleServer(
                enable_webhooks=True, webhooks={"retry_schedule": list(DEMO_RETRY_SCHEDULE)}
            )
        )
        client = running.enter_context(from_uri(server.uri))
        result = _deliver(console, receiver, server, client, secret)
        if result is None:
            return 1
        if not ui:
            running.close()  # nothing is left running while the report prints
        status = _report(console, receiver, *result, show_json=show_json, started=started, ui=ui)
        if ui and status == 0:
            _keep_pages_up(console, server, receiver, stop_event)
    if ui and status == 0:
        console.print("Stopped: the server, the receiver and the temporary directory are gone.")
    return status


def _deliver(
    console: Console, receiver: Any, server: Any, client: Any, secret: str
) -> tuple[list[Any], list[Any], list[Any]] | None:
    """Register, write, and wait: (every request received, the history, one per event),
    or None (saying so) when not every event arrived in time."""
    hook = client.webhooks.register(receiver.url, secret=secret)
    console.print(
        f"Registered webhook {hook.id} on the catalog root -> {hook.url} (signed with a "
        "secret; every event type)."
    )
    console.print("The receiver will refuse the first delivery once (HTTP 500): watch it retry.")
    receiver.fail_next(1)
    done = _write_entries(client, console)
    for line in done:
        console.print(f"  • {line}")
    try:
        # One event per change: each line of ``done`` is one.
        arrived = receiver.wait_for(len(done), timeout=WAIT_TIMEOUT, unique=True)
        server.drain(timeout=WAIT_TIMEOUT)
    except TimeoutError as exc:
        console.print(Text(f"Not every event arrived in time:\n{exc}", style="bold red"))
        return None
    return receiver.deliveries, client.webhooks.history(hook.id), arrived


def _report(
    console: Console,
    receiver: Any,
    deliveries: Sequence[Any],
    history: Sequence[Any],
    arrived: Sequence[Any],
    *,
    show_json: bool,
    started: float,
    ui: bool,
) -> int:
    """Print both tables and the verdict; 0 when all is well."""
    console.print()
    console.print(_deliveries_table(deliveries))
    schemes = sorted({d.signature_scheme for d in deliveries if d.signature_scheme})
    console.print(
        Text(
            "verified: the receiver checked each signature with the webhook's secret "
            f"(scheme: {', '.join(schemes) or 'none'}; Standard Webhooks signs "
            "id.timestamp.body with HMAC-SHA256).",
            style="dim",
        )
    )
    if show_json:
        for number, delivery in enumerate(receiver.unique(deliveries), start=1):
            console.print(Text(f"Payload of event {number} ({delivery.event_type}):", style="bold"))
            console.print_json(json.dumps(delivery.json))
    console.print()
    console.print(_history_table(history))
    console.print()

    problems = []
    if any(d.signature_valid is not True for d in deliveries):
        problems.append("a delivery did not carry a valid signature")
    if any(r.outcome != "success" for r in history):
        problems.append("a delivery in the history did not succeed")
    if {d.event_id for d in arrived} != {r.event_id for r in history}:
        problems.append("the receiver's event ids and the history's do not match")
    retries = sum(r.attempts - 1 for r in history)
    if problems:
        console.print(Text("Something is wrong: " + "; ".join(problems), style="bold red"))
        return 1
    after = (
        "the server and the receiver keep running (below)."
        if ui
        else "the server and its temporary directory are gone."
    )
    console.print(
        Text.assemble(
            (f"{len(history)} events delivered", "bold green"),
            (
                f", each signed and verified; {retries} retr{'y' if retries == 1 else 'ies'} "
                f"(the same event id on every attempt, so a receiver can drop the duplicate). "
                f"Done in {time.perf_counter() - started:.1f} s; {after}",
                "",
            ),
        )
    )
    console.print(
        "Next: `hookbook tutorials` copies the five tutorial notebooks into a folder and says "
        'how to open them in Jupyter (start with "Webhooks in ten minutes"); '
        + ("" if ui else "`hookbook demo --ui` shows this run in a browser; ")
        + "`hookbook receive` watches the deliveries of your own server."
    )
    return 0


def _keep_pages_up(
    console: Console, server: Any, receiver: Any, stop_event: threading.Event | None
) -> None:
    """Print the dashboard's and the inspector's addresses, then wait for Ctrl-C."""
    console.print()
    console.print(Text("See it in a browser", style="bold"))
    console.print(
        "  The server's dashboard (webhooks, deliveries, attempts, redeliver):", soft_wrap=True
    )
    console.print(f"    {server.dashboard_url}", soft_wrap=True, highlight=False)
    console.print("  The receiver's inspector (deliveries live, fault controls):", soft_wrap=True)
    console.print(f"    {receiver.inspector_url}", soft_wrap=True, highlight=False)
    console.print(
        "  The dashboard link signs in once, within a minute; after that, sign in with this "
        f"demo server's API key: {server.api_key}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(Text("Press Ctrl-C to stop.", style="dim"))
    stop = stop_event if stop_event is not None else threading.Event()
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
