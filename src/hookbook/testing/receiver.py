"""An in-process webhook receiver for tests and notebooks.

:class:`WebhookReceiver` listens on ``127.0.0.1``, records every request it
gets as a :class:`Delivery`, verifies signatures when given a secret, and can
be told to misbehave (fail, answer a script, delay, reset the connection,
answer 410) so a sender's retry path can be tested::

    with WebhookReceiver(secret="s3cret") as receiver:
        receiver.fail_next(2)                # two 500s, then 200s
        ...                                  # register receiver.url with a sender
        (delivery,) = receiver.wait_for(1, timeout=5)
        assert delivery.signature_valid

It is built on pytest-httpserver's :class:`~pytest_httpserver.HTTPServer`
(threaded) and werkzeug, made fast in :mod:`hookbook.testing.http_server`.

Waiting is on a :class:`threading.Condition` with a deadline, never a sleep.
"""

from __future__ import annotations

import html
import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from hookbook.errors import SignatureError
from hookbook.paths import split_path
from hookbook.signing import verify

from .http_server import ReceiverHTTPServer, Reset
from .inspector import PREFIX as INSPECTOR_PREFIX
from .inspector import Inspector, is_inspector_path

__all__ = [
    "Delivery",
    "Headers",
    "ResetConnection",
    "ScriptedResponse",
    "WebhookReceiver",
]


HOST = "127.0.0.1"
#: The path of :attr:`WebhookReceiver.url`; every other path is recorded too.
DEFAULT_PATH = "/webhook"
#: Longest :meth:`WebhookReceiver.delay` accepted, in seconds.
MAX_DELAY = 300.0
#: How many deliveries a TimeoutError message lists before eliding the rest.
_MESSAGE_LIMIT = 20


# --------------------------------------------------------------------------- #
# Public value types
# --------------------------------------------------------------------------- #


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive HTTP headers.

    ``headers["x-tiled-event-id"]`` and ``headers["X-Tiled-Event-ID"]`` are the
    same; a header sent several times reads as its values joined by ``", "``.
    ``raw`` keeps the (name, value) pairs as they arrived.
    """

    __slots__ = ("_names", "_values", "raw")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = tuple(items.items() if isinstance(items, Mapping) else items)
        values: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, value in pairs:
            lower = name.lower()
            if lower in values:
                values[lower] = f"{values[lower]}, {value}"
            else:
                values[lower] = value
                names[lower] = name
        self.raw: tuple[tuple[str, str], ...] = pairs
        self._values = values
        self._names = names

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def multi_items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair as received, repeated headers kept apart (as httpx)."""
        return list(self.raw)

    def __repr__(self) -> str:
        return f"Headers({dict(zip(self._names.values(), self._values.values(), strict=True))!r})"


@dataclass(frozen=True)
class ScriptedResponse:
    """One scripted answer: ``ScriptedResponse(503, headers={"Retry-After": "2"})``.

    ``body`` is bytes or text (sent as UTF-8). See :meth:`WebhookReceiver.respond_with`.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code (100..599), not {self.status}")


@dataclass(frozen=True)
class ResetConnection:
    """A scripted fault: close the connection without any HTTP response.

    The sender sees a transport error (connection reset or "server
    disconnected"), never a status code. See :meth:`WebhookReceiver.reset_next`.
    """


@dataclass(frozen=True, eq=False, repr=False)
class Delivery:
    """One request the receiver got, and what it answered.

    ``json`` is the parsed body (None when the body is not JSON); ``headers``
    are case-insensitive. ``signature_valid`` is None when the receiver has no
    secret, else whether a signature verified (False for an unsigned request),
    with the reason in ``signature_error``. ``status_sent`` is the status the
    receiver answered (None when it reset the connection); ``fault`` names the
    injected fault that chose it (``"scripted"``, ``"reset"``, ``"gone"``,
    ``"bad-signature"``, ``"stopped"``) or is None for a normal answer, and
    ``delay`` is how long the receiver waited before answering.
    """

    method: str
    path: str
    headers: Headers
    body: bytes
    json: Any
    received_at: datetime
    signature_valid: bool | None
    signature_error: str | None
    signature_scheme: str | None
    status_sent: int | None
    fault: str | None = None
    delay: float = 0.0

    @property
    def event_id(self) -> str | None:
        """The ``X-Tiled-Event-ID`` header: the same on every retry of one event."""
        return self.headers.get("X-Tiled-Event-ID")

    @property
    def event_type(self) -> str | None:
        """``json["type"]``, e.g. ``"container-child-created"``."""
        return self._field("type")

    @property
    def key(self) -> str | None:
        """``json["key"]``: the key of the entry the event is about."""
        return self._field("key")

    @property
    def node_path(self) -> tuple[str, ...] | None:
        """``json["path"]`` as a tuple of segments from the root, the key included."""
        value = self.json.get("path") if isinstance(self.json, dict) else None
        if isinstance(value, list):
            return tuple(str(segment) for segment in value)
        return None

    @property
    def accepted(self) -> bool:
        """Whether the receiver answered with a 2xx status."""
        return self.status_sent is not None and 200 <= self.status_sent < 300

    def _field(self, name: str) -> str | None:
        if isinstance(self.json, dict):
            value = self.json.get(name)
            if isinstance(value, str):
                return value
        return None

    def summary(self) -> str:
        """One line: method, URL path, event type, node path, event id, signature, answer."""
        return (
            f"{self.method} {self.path} type={self.event_type or '-'} "
            f"path={_format_node_path(self.node_path)} event_id={self.event_id or '-'} "
            f"signature={_signature_text(self)} -> {_answer_text(self)}"
        )

    def __repr__(self) -> str:
        return (
            f"Delivery({self.method} {self.path}, event_type={self.event_type!r}, "
            f"path={_format_node_path(self.node_path)!r}, event_id={self.event_id!r}, "
            f"signature_valid={self.signature_valid!r}, status_sent={self.status_sent!r}"
            + (f", fault={self.fault!r}" if self.fault else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("received at", self.received_at.isoformat(timespec="milliseconds")),
            ("request", f"{self.method} {self.path}"),
            ("event type", self.event_type or "-"),
            ("path", _format_node_path(self.node_path)),
            ("event id", self.event_id or "-"),
            ("signature", _signature_text(self)),
            ("answered", _answer_text(self)),
        ]
        table = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        if self.json is not None:
            body = json.dumps(self.json, indent=2, sort_keys=True)
        else:
            body = self.body.decode("utf-8", "replace")
        return (
            f"<table>{table}</table>"
            f"<details><summary>body ({len(self.body)} bytes)</summary>"
            f"<pre>{html.escape(body)}</pre></details>"
        )


# --------------------------------------------------------------------------- #
# The receiver
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: reset the connection
    headers: Mapping[str, str]
    body: bytes
    fault: str | None


class WebhookReceiver:
    """A webhook receiver on ``127.0.0.1`` that records what it gets.

    Args:
        secret: the webhook secret to verify signatures with (both the
            ``X-Tiled-Signature`` and the Standard Webhooks scheme). Without
            one, ``Delivery.signature_valid`` is None.
        port: the port to listen on; 0 picks a free one.
        tolerance: how far ``webhook-timestamp`` may be from now, in seconds.
        reject_bad_signatures: answer 401 to a request whose signature does
            not verify (needs ``secret``), so a sender's retry path can be tested.
        default_status: the status of a normal answer (200, with the body
            ``{"ok": true}``). ``hookbook receive --status`` uses it.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`
    (``receiver = WebhookReceiver().start()`` in a notebook). A stopped
    receiver can be started again; it then listens on the same port, so a
    URL registered earlier still reaches it.

    Fault injection, each undone by :meth:`clear`: :meth:`fail_next`,
    :meth:`respond_with`, :meth:`reset_next` (these three append to one
    script, answered in order, after which the receiver answers normally),
    :meth:`delay` and :meth:`gone`. ``reject_bad_signatures`` and
    ``default_status`` are configuration, kept by :meth:`clear`. A request
    gets, in this order of precedence: 410 if :meth:`gone` was called; 401 if
    its signature is rejected; the next scripted answer; the normal answer.
    Every request is recorded, with the status it was sent, except those under
    ``/_hookbook/``: that is the inspector, a page showing the deliveries live with
    controls for the same faults (:attr:`inspector_url`).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        port: int = 0,
        tolerance: float = 300,
        reject_bad_signatures: bool = False,
        default_status: int = 200,
    ) -> None:
        if reject_bad_signatures and secret is None:
            raise ValueError("reject_bad_signatures=True needs a secret to verify with")
        ScriptedResponse(default_status)  # validates the status code
        self.secret = secret
        self.tolerance = tolerance
        self.reject_bad_signatures = reject_bad_signatures
        self.default_status = default_status
        self._server = ReceiverHTTPServer(HOST, port, self._respond)
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._deliveries: list[Delivery] = []
        self._script: list[ScriptedResponse | ResetConnection] = []
        self._delay = 0.0
        self._gone = False
        #: Counts clear() calls, so the inspector knows its list was emptied.
        self._generation = 0
        self._inspector = Inspector(self)

    # -- lifecycle --------------------------------------------------------- #

    def start(self) -> WebhookReceiver:
        """Start listening (returns at once, ready for requests); returns self."""
        if self._server.is_running():
            raise RuntimeError(f"{self!r} is already running")
        self._stopped.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening and end open connections; a no-op when not running.

        A request waiting out a :meth:`delay` is cut short: its connection is
        dropped and it is recorded with ``fault="stopped"``.
        """
        if not self._server.is_running():
            return
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()  # ends the inspector's waiting requests at once
        self._server.stop()

    @property
    def running(self) -> bool:
        return self._server.is_running()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------- #

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for until first started)."""
        return self._server.port

    @property
    def url(self) -> str:
        """The URL to register (``http://127.0.0.1:PORT/webhook``)."""
        return self.url_for(DEFAULT_PATH)

    def url_for(self, path: str) -> str:
        """A URL on this receiver with another path (``Delivery.path`` tells them apart).

        Paths under ``/_hookbook/`` belong to the inspector and are refused
        (``ValueError``): nothing sent there is recorded.
        """
        if self._server.port == 0:
            raise RuntimeError("the receiver has no port yet: start it first")
        if is_inspector_path("/" + path.lstrip("/")):
            raise ValueError(
                f"{path!r} is under {INSPECTOR_PREFIX}/, the receiver's inspector: "
                "requests there are never recorded as deliveries"
            )
        return self._server.url_for(path)

    @property
    def inspector_url(self) -> str:
        """The inspector's page, with this receiver's token (its controls need it).

        Open it in a browser: deliveries appear as they arrive, and its controls
        set what the next requests get (the same faults as :meth:`fail_next`,
        :meth:`reset_next`, :meth:`gone` and :meth:`delay`).
        """
        if self._server.port == 0:
            raise RuntimeError("the receiver has no port yet: start it first")
        return f"http://{HOST}:{self.port}{INSPECTOR_PREFIX}/?token={self._inspector.token}"

    # -- what arrived ------------------------------------------------------ #

    @property
    def deliveries(self) -> list[Delivery]:
        """A snapshot of every request received so far, in the order answered."""
        with self._cond:
            return list(self._deliveries)

    def wait_for(
        self,
        n: int,
        timeout: float = 5.0,
        *,
        event_type: str | None = None,
        path: str | Sequence[str] | None = None,
        unique: bool = False,
    ) -> list[Delivery]:
        """Wait until ``n`` matching deliveries have arrived; return the first ``n``.

        ``event_type`` matches ``json["type"]``; ``path`` matches ``json["path"]``
        (``"a/b"`` or ``["a", "b"]``); ``unique=True`` counts each event id once
        (retries of one event are one delivery). Raises :class:`TimeoutError`
        after ``timeout`` seconds, listing every delivery that did arrive.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        if timeout is None or not timeout >= 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        wanted_path = _normalize_path(path)

        def matching() -> list[Delivery]:
            found = [
                d
                for d in self._deliveries
                if (event_type is None or d.event_type == event_type)
                and (wanted_path is None or d.node_path == wanted_path)
            ]
            return self.unique(found) if unique else found

        with self._cond:
            found = self._cond.wait_for(lambda: len(matching()) >= n, timeout)
            if found:
                return matching()[:n]
            raise TimeoutError(
                self._timeout_message(n, timeout, event_type, wanted_path, unique, matching())
            )

    def unique(self, deliveries: Iterable[Delivery] | None = None) -> list[Delivery]:
        """Drop retried duplicates: keep the first delivery of each event id.

        Deliveries without an ``X-Tiled-Event-ID`` are all kept. Defaults to
        :attr:`deliveries`.
        """
        items = self.deliveries if deliveries is None else list(deliveries)
        seen: set[str] = set()
        kept = []
        for delivery in items:
            event_id = delivery.event_id
            if event_id is not None:
                if event_id in seen:
                    continue
                seen.add(event_id)
            kept.append(delivery)
        return kept

    def clear(self) -> None:
        """Forget every delivery and undo all fault injection (script, delay, gone)."""
        with self._cond:
            self._deliveries.clear()
            self._generation += 1
            self.clear_faults()
            self._cond.notify_all()

    def clear_faults(self) -> None:
        """Undo all fault injection (script, delay, gone); keep the deliveries."""
        with self._cond:
            self._script.clear()
            self._delay = 0.0
            self._gone = False

    # -- fault injection --------------------------------------------------- #

    def fail_next(self, k: int = 1, status: int = 500) -> None:
        """Answer the next ``k`` requests with ``status`` (appended to the script)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        self.respond_with(*[ScriptedResponse(status)] * k)

    def respond_with(self, *responses: ScriptedResponse | ResetConnection) -> None:
        """Answer the next requests with these, in order, then answer normally.

        ``receiver.respond_with(ScriptedResponse(503, headers={"Retry-After": "1"}),
        ScriptedResponse(200))``. Appended to the script after what is pending.
        """
        for response in responses:
            if not isinstance(response, ScriptedResponse | ResetConnection):
                raise TypeError(
                    f"expected ScriptedResponse or ResetConnection, not {type(response).__name__}"
                )
        with self._cond:
            self._script.extend(responses)

    def reset_next(self, k: int = 1) -> None:
        """Close the next ``k`` connections with no HTTP response (appended to the script)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        self.respond_with(*[ResetConnection()] * k)

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering every request from now on (0 turns it off).

        At most ``MAX_DELAY`` seconds; :meth:`stop` cuts a wait short.
        """
        if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DELAY):
            raise ValueError(f"delay must be between 0 and {MAX_DELAY} seconds, not {seconds}")
        with self._cond:
            self._delay = float(seconds)

    def gone(self) -> None:
        """Answer ``410 Gone`` to every request from now on (a sender should stop)."""
        with self._cond:
            self._gone = True

    @property
    def script(self) -> tuple[ScriptedResponse | ResetConnection, ...]:
        """The scripted answers not yet used."""
        with self._cond:
            return tuple(self._script)

    # -- serving ------------------------------------------------------------ #

    def _respond(self, request: Request) -> Response:
        if is_inspector_path(request.path):
            return self._inspector.handle(request)  # never recorded, never faulted
        received_at = datetime.now(UTC)
        body = request.get_data()
        headers = Headers(request.headers.items())
        valid, error, scheme = self._check_signature(body, headers)
        with self._cond:
            answer = self._choose_answer(valid)
            delay = self._delay
        if delay and self._stopped.wait(delay):
            answer = _Answer(None, {}, b"", "stopped")
        delivery = Delivery(
            method=request.method,
            path=request.path,
            headers=headers,
            body=body,
            json=_parse_json(body),
            received_at=received_at,
            signature_valid=valid,
            signature_error=error,
            signature_scheme=scheme,
            status_sent=answer.status,
            fault=answer.fault,
            delay=delay,
        )
        with self._cond:
            self._deliveries.append(delivery)
            self._cond.notify_all()
        if answer.status is None:
            raise Reset("connection reset by WebhookReceiver")
        return Response(answer.body, status=answer.status, headers=dict(answer.headers))

    def _check_signature(
        self, body: bytes, headers: Headers
    ) -> tuple[bool | None, str | None, str | None]:
        if self.secret is None:
            return None, None, None
        try:
            scheme = verify(body, headers, self.secret, tolerance=self.tolerance)
        except SignatureError as exc:
            return False, f"{type(exc).__name__}: {exc}", None
        except Exception as exc:  # a malformed header must not crash the receiver
            return False, f"{type(exc).__name__}: {exc}", None
        return True, None, scheme

    def _choose_answer(self, signature_valid: bool | None) -> _Answer:
        """Pick the answer for one request (called with the lock held)."""
        if self._gone:
            return _Answer(410, _JSON, b'{"ok": false, "detail": "gone"}', "gone")
        if self.reject_bad_signatures and signature_valid is False:
            return _Answer(401, _JSON, b'{"ok": false, "detail": "bad signature"}', "bad-signature")
        if self._script:
            scripted = self._script.pop(0)
            if isinstance(scripted, ResetConnection):
                return _Answer(None, {}, b"", "reset")
            body = scripted.body.encode() if isinstance(scripted.body, str) else scripted.body
            return _Answer(scripted.status, scripted.headers, body, "scripted")
        body = b'{"ok": true}' if 200 <= self.default_status < 300 else b'{"ok": false}'
        return _Answer(self.default_status, _JSON, body, None)

    def _wait_changes(
        self, after: int, generation: int, timeout: float
    ) -> tuple[int, list[Delivery], dict[str, Any]]:
        """For the inspector: the deliveries after the first ``after`` (all of them
        if the list was cleared since ``generation``), waiting up to ``timeout``
        for one; returns where they start, them, and the receiver's state."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    len(self._deliveries) > after
                    or self._generation != generation
                    or self._stopped.is_set()
                ),
                timeout,
            )
            start = after if generation == self._generation else 0
            return start, self._deliveries[start:], self._inspector_state()

    def _inspector_state(self) -> dict[str, Any]:
        with self._cond:
            return {
                "generation": self._generation,
                "total": len(self._deliveries),
                "faults": self._faults_text() or "none: every request gets the normal answer",
            }

    def _wait_new(self, count: int, timeout: float) -> list[Delivery]:
        """Deliveries after the first ``count``, waiting up to ``timeout`` for one."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._deliveries) > count, timeout)
            return self._deliveries[count:]

    # -- display ------------------------------------------------------------ #

    def _timeout_message(
        self,
        n: int,
        timeout: float,
        event_type: str | None,
        path: tuple[str, ...] | None,
        unique: bool,
        matched: list[Delivery],
    ) -> str:
        filters = []
        if event_type is not None:
            filters.append(f"event_type={event_type!r}")
        if path is not None:
            filters.append(f"path={'/'.join(path)!r}")
        if unique:
            filters.append("unique=True")
        what = f"{n} deliver{'y' if n == 1 else 'ies'}" + (
            f" matching {', '.join(filters)}" if filters else ""
        )
        arrived = self._deliveries
        lines = [
            f"waited {timeout:g} s for {what} at {self._describe_url()}; "
            f"{len(matched)} matched, {len(arrived)} arrived"
            + (":" if arrived else " (nothing was delivered)")
        ]
        for i, delivery in enumerate(arrived[:_MESSAGE_LIMIT], start=1):
            lines.append(f"  {i}. {delivery.summary()}")
        if len(arrived) > _MESSAGE_LIMIT:
            lines.append(f"  ... and {len(arrived) - _MESSAGE_LIMIT} more")
        if not self.running:
            lines.append("(the receiver is not running)")
        return "\n".join(lines)

    def _describe_url(self) -> str:
        return self.url if self.port else "(not started)"

    def _faults_text(self) -> str:
        parts = []
        if self._gone:
            parts.append("gone (410)")
        if self._script:
            parts.append(f"script: {', '.join(_script_text(s) for s in self._script)}")
        if self._delay:
            parts.append(f"delay {self._delay:g} s")
        if self.reject_bad_signatures:
            parts.append("rejects bad signatures (401)")
        return "; ".join(parts)

    def __repr__(self) -> str:
        with self._cond:
            faults = self._faults_text()
            count = len(self._deliveries)
        state = "running" if self.running else "stopped"
        return (
            f"<WebhookReceiver {self._describe_url()} {state}, {count} deliveries"
            + (f", {faults}" if faults else "")
            + ">"
        )

    def _repr_html_(self) -> str:
        with self._cond:
            deliveries = list(self._deliveries)
            faults = self._faults_text()
        head = (
            f"<p><b>WebhookReceiver</b> <code>{html.escape(self._describe_url())}</code> "
            f"({'running' if self.running else 'stopped'}; secret "
            f"{'set' if self.secret else 'not set'}; {len(deliveries)} deliveries"
            + (f"; {html.escape(faults)}" if faults else "")
            + ")"
            + (
                f" <a href='{html.escape(self.inspector_url)}' target='_blank' rel='noopener'>"
                "open the inspector</a>"
                if self.running
                else ""
            )
            + "</p>"
        )
        if not deliveries:
            return head
        columns = ["#", "received", "event type", "path", "event id", "signature", "answered"]
        rows = []
        for i, d in enumerate(deliveries, start=1):
            cells = [
                str(i),
                d.received_at.strftime("%H:%M:%S.%f")[:-3],
                d.event_type or "-",
                _format_node_path(d.node_path),
                d.event_id or "-",
                _signature_text(d),
                _answer_text(d),
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        header = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(rows)
        return f"{head}<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


_JSON = {"Content-Type": "application/json"}


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _normalize_path(path: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    return split_path(path)


def _format_node_path(path: tuple[str, ...] | None) -> str:
    if path is None:
        return "-"
    return "/".join(path) or "(root)"


def _signature_text(delivery: Delivery) -> str:
    if delivery.signature_valid is None:
        return "-"
    if delivery.signature_valid:
        return f"valid ({delivery.signature_scheme})" if delivery.signature_scheme else "valid"
    return f"INVALID ({delivery.signature_error})"


def _answer_text(delivery: Delivery) -> str:
    if delivery.status_sent is None:
        text = "no response (connection reset)"
    else:
        text = str(delivery.status_sent)
    if delivery.fault:
        text += f" [{delivery.fault}]"
    if delivery.delay:
        text += f" after {delivery.delay:g} s"
    return text


def _script_text(item: ScriptedResponse | ResetConnection) -> str:
    return "reset" if isinstance(item, ResetConnection) else str(item.status)
