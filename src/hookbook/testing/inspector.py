"""The receiver's inspector: a page at ``/_hookbook/`` on the receiver's own port.

It shows what the receiver got as it arrives, and sets what the next requests
get (the receiver's own fault injection: fail the next k with a status, reset
connections, 410, a delay). Every request under the prefix needs the
receiver's token (``receiver.inspector_url`` carries it), except the page's
CSS and JS; none is recorded as a delivery or gets an injected fault.

- ``GET /_hookbook/?token=T``: the page;
- ``GET /_hookbook/api/deliveries?after=N&wait=S``: deliveries after the first
  N, waiting up to S seconds for one (long polling), as HTML fragments;
- ``POST /_hookbook/api/faults``: a JSON action (``fail_next``, ``reset_next``,
  ``gone``, ``delay``, ``clear_faults``, ``clear``).
"""

from __future__ import annotations

import hmac
import json
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    import jinja2

    from .receiver import WebhookReceiver

PREFIX = "/_hookbook"
ASSETS = Path(__file__).parent / "inspector_assets"
STATIC = {
    "inspector.css": "text/css",
    "inspector.js": "text/javascript",
    # Linked by the page, so a browser does not ask the receiver for /favicon.ico
    # (which would be recorded as a delivery).
    "favicon.svg": "image/svg+xml",
}
#: The longest a deliveries request waits for something new, in seconds.
MAX_WAIT = 10.0
#: At most this many scripted answers per control request.
MAX_COUNT = 1000
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


FORBIDDEN = (
    "the inspector needs this receiver's token: open receiver.inspector_url "
    "(the address hookbook receive prints)"
)


def is_inspector_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@cache
def _templates() -> jinja2.Environment:
    import jinja2  # on the first page view: a receiver that nobody looks at never needs it

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(ASSETS),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class ControlError(ValueError):
    """A control request that cannot be carried out; its message says why."""


class Inspector:
    """The inspector of one receiver (a WSGI handler the receiver dispatches to)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.token = secrets.token_urlsafe(24)

    def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX) :] or "/"
        if path.startswith("/static/") and request.method == "GET":
            return self._static(path.removeprefix("/static/"))
        presented = request.headers.get("X-Hookbook-Token") or request.args.get("token", "")
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            if path == "/":  # a person at the page's address: a page that says why
                html = _templates().get_template("forbidden.html").render(message=FORBIDDEN)
                return Response(html, status=403, mimetype="text/html", headers=HEADERS)
            return _json({"detail": FORBIDDEN}, 403)
        if path == "/" and request.method == "GET":
            return self._page()
        if path == "/api/deliveries" and request.method == "GET":
            return self._deliveries(request)
        if path == "/api/faults" and request.method == "POST":
            return self._control(request)
        return _json({"detail": f"no inspector route {request.method} {request.path}"}, 404)

    # -- answers ------------------------------------------------------------ #

    def _static(self, name: str) -> Response:
        if name not in STATIC:
            return _json({"detail": f"no inspector file {name!r}"}, 404)
        body = (ASSETS / name).read_bytes()
        return Response(body, mimetype=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})

    def _page(self) -> Response:
        receiver = self.receiver
        html = (
            _templates()
            .get_template("inspector.html")
            .render(receiver=receiver, token=self.token, state=self._state())
        )
        return Response(html, mimetype="text/html", headers=HEADERS)

    def _deliveries(self, request: Request) -> Response:
        try:
            after = max(0, int(request.args.get("after", "0")))
            wait = min(MAX_WAIT, max(0.0, float(request.args.get("wait", "0"))))
            generation = int(request.args.get("generation", "-1"))
        except ValueError:
            return _json({"detail": "after, wait and generation must be numbers"}, 400)
        start, new, state = self.receiver._wait_changes(after, generation, wait)
        template = _templates().get_template("_delivery.html")
        fragments = [
            template.render(d=d, number=start + i + 1, view=_view(d)) for i, d in enumerate(new)
        ]
        return _json({**state, "start": start, "html": "".join(reversed(fragments))})

    def _control(self, request: Request) -> Response:
        try:
            action = request.get_json(force=False, silent=True)
            if not isinstance(action, dict):
                raise ControlError('send a JSON object, e.g. {"action": "fail_next", "count": 2}')
            message = self._apply(action)
        except (ControlError, ValueError, TypeError) as exc:
            return _json({"detail": str(exc), **self._state()}, 400)
        return _json({"detail": message, **self._state()})

    def _apply(self, action: dict[str, Any]) -> str:
        receiver = self.receiver
        name = action.get("action")
        if name == "fail_next":
            count, status = _count(action), _integer(action, "status", 500)
            receiver.fail_next(count, status=status)
            return f"the next {count} request(s) get HTTP {status}"
        if name == "reset_next":
            count = _count(action)
            receiver.reset_next(count)
            return f"the next {count} connection(s) are reset with no response"
        if name == "gone":
            receiver.gone()
            return "every request now gets 410 Gone (a sender stops and disables the webhook)"
        if name == "delay":
            seconds = action.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ControlError("seconds must be a number")
            receiver.delay(float(seconds))
            return f"every answer now waits {seconds:g} s" if seconds else "no delay"
        if name == "clear_faults":
            receiver.clear_faults()
            return "no faults: requests get the normal answer"
        if name == "clear":
            receiver.clear()
            return "deliveries and faults forgotten"
        raise ControlError(
            f"unknown action {name!r}: use fail_next, reset_next, gone, delay, clear_faults "
            "or clear"
        )

    def _state(self) -> dict[str, Any]:
        return self.receiver._inspector_state()


def _integer(action: dict[str, Any], name: str, default: int) -> int:
    value = action.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{name} must be a whole number, not {value!r}")
    return value


def _count(action: dict[str, Any]) -> int:
    count = _integer(action, "count", 1)
    if not 1 <= count <= MAX_COUNT:
        raise ControlError(f"count must be between 1 and {MAX_COUNT}, not {count}")
    return count


def _view(delivery: Any) -> dict[str, str]:
    from .receiver import _answer_text, _format_node_path, _signature_text

    if delivery.json is not None:
        body = json.dumps(delivery.json, indent=2, sort_keys=True, ensure_ascii=False)
    else:
        body = delivery.body.decode("utf-8", "replace")
    return {
        "time": delivery.received_at.strftime("%H:%M:%S.%f")[:-3],
        "node_path": _format_node_path(delivery.node_path),
        "signature": _signature_text(delivery),
        "answer": _answer_text(delivery),
        "body": body,
    }


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json", headers=HEADERS)
