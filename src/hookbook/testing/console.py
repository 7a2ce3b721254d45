"""``hookbook receive``: a local receiver that prints what arrives.

:func:`run_receiver` runs a :class:`~hookbook.testing.WebhookReceiver` on a
port, prints each delivery as it arrives (event type, path, key, event id,
signature verdict, what it answered; the JSON body on request) and answers
every request with a chosen status, so a sender's retries can be watched.
It returns on Ctrl-C or when ``stop_event`` is set.
"""

from __future__ import annotations

import json
import threading

from rich.console import Console
from rich.text import Text

from hookbook.testing.receiver import Delivery, WebhookReceiver

__all__ = ["print_delivery", "run_receiver"]

#: How often the loop looks at ``stop_event`` while no delivery arrives, in seconds.
_STOP_CHECK_INTERVAL = 0.1


def run_receiver(
    port: int,
    *,
    secret: str | None,
    status: int = 200,
    show_json: bool = False,
    console: Console | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Receive on ``127.0.0.1:port`` and print every delivery until stopped.

    Every request, on any path, is answered with ``status`` (a non-2xx status
    makes a sender retry). With ``secret``, signatures are verified (both
    schemes) and the verdict printed; a bad signature is reported, not
    refused. ``port=0`` picks a free port (printed). Returns when
    ``stop_event`` is set or on ``KeyboardInterrupt`` (Ctrl-C); a port that
    is in use raises ``OSError``.
    """
    console = console if console is not None else Console()
    stop_event = stop_event if stop_event is not None else threading.Event()
    receiver = WebhookReceiver(secret=secret, port=port, default_status=status)
    receiver.start()
    printed = 0
    try:
        console.print(
            Text.assemble(
                ("Listening on ", ""),
                (receiver.url_for("/"), "bold cyan"),
                (" (any path); answering ", ""),
                (str(status), "bold"),
                ("; signatures ", ""),
                ("verified with the given secret" if secret else "not checked (no secret)", ""),
                (". Press Ctrl-C to stop.", "dim"),
            )
        )
        console.print(
            Text.assemble(
                ("Inspector (deliveries live, fault controls): ", ""),
                (receiver.inspector_url, "bold cyan"),
            ),
            soft_wrap=True,
        )
        while not stop_event.is_set():
            for delivery in receiver._wait_new(printed, timeout=_STOP_CHECK_INTERVAL):
                printed += 1
                print_delivery(console, delivery, number=printed, show_json=show_json)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    # What arrived between the last look and the stop.
    for delivery in receiver.deliveries[printed:]:
        printed += 1
        print_delivery(console, delivery, number=printed, show_json=show_json)
    console.print(Text(f"Stopped after {printed} deliveries.", style="dim"))


def print_delivery(
    console: Console, delivery: Delivery, *, number: int, show_json: bool = False
) -> None:
    """Print one delivery as a line (and its body, with ``show_json``)."""
    path = delivery.node_path
    line = Text.assemble(
        (f"#{number} ", "dim"),
        (delivery.received_at.strftime("%H:%M:%S.%f")[:-3] + " ", "dim"),
        (f"{delivery.method} {delivery.path} ", ""),
        (delivery.event_type or "(no event type)", "bold magenta"),
        ("  path=", "dim"),
        ("/".join(path) if path else ("(root)" if path == () else "-"), ""),
        ("  key=", "dim"),
        (delivery.key or "-", ""),
        ("  event_id=", "dim"),
        (delivery.event_id or "-", ""),
        ("  signature: ", "dim"),
        _signature_verdict(delivery),
        ("  -> ", "dim"),
        _answer(delivery),
    )
    console.print(line, soft_wrap=True)
    if show_json:
        if delivery.json is not None:
            console.print_json(json.dumps(delivery.json))
        elif delivery.body:
            console.print(Text(delivery.body.decode("utf-8", "replace")))


def _signature_verdict(delivery: Delivery) -> Text:
    if delivery.signature_valid is None:
        return Text("not checked", style="dim")
    if delivery.signature_valid:
        return Text(f"valid ({delivery.signature_scheme})", style="bold green")
    return Text(f"INVALID: {delivery.signature_error}", style="bold red")


def _answer(delivery: Delivery) -> Text:
    if delivery.status_sent is None:
        return Text("no response (connection closed)", style="bold red")
    style = "green" if delivery.accepted else "yellow"
    return Text(str(delivery.status_sent), style=style)
