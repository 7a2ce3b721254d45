"""Sign and verify webhook deliveries, in both schemes hookbook sends.

A delivery of a webhook that has a secret carries two independent signatures.
Both use HMAC-SHA256 keyed with the secret's UTF-8 bytes, ``key =
secret.encode("utf-8")``:

``X-Tiled-Signature`` (Tiled-compatible, body only)::

    X-Tiled-Signature: sha256=<hex(HMAC-SHA256(key, body))>

Standard Webhooks (https://www.standardwebhooks.com/), which add replay
protection because the timestamp is signed::

    webhook-id:        <event id>            (= X-Tiled-Event-ID)
    webhook-timestamp: <integer Unix seconds, set at each attempt>
    webhook-signature: v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body))>

Verifying with the ``standardwebhooks`` package: that package takes the secret
as ``"whsec_" + base64(key bytes)`` and HMACs with the decoded bytes. So a
receiver whose webhook secret is ``secret`` verifies hookbook deliveries
with::

    from standardwebhooks import Webhook
    Webhook(standard_webhooks_secret(secret)).verify(body, headers)
    # standard_webhooks_secret(secret) == "whsec_" + base64.b64encode(secret.encode()).decode()

Replay protection: :func:`verify` lets the Standard Webhooks headers decide
whenever any of them is present, so a captured delivery replayed after the
tolerance fails even though its body-only ``X-Tiled-Signature`` is still
valid. A delivery that carries only ``X-Tiled-Signature`` (what Tiled sends)
is accepted by default; pass ``require_timestamp=True`` to refuse it when the
sender is known to be hookbook (an attacker could otherwise strip the
``webhook-*`` headers from a captured delivery and replay the rest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from hookbook.errors import BadSignatureError, MissingSignatureError, StaleTimestampError

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME_STANDARD_WEBHOOKS",
    "SCHEME_TILED",
    "sign_headers",
    "standard_webhooks_secret",
    "verify",
]

TILED_SIGNATURE_HEADER = "X-Tiled-Signature"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"

SCHEME_STANDARD_WEBHOOKS: Literal["standard-webhooks"] = "standard-webhooks"
SCHEME_TILED: Literal["tiled"] = "tiled"

#: Seconds a ``webhook-timestamp`` may be away from the receiver's clock (either way).
DEFAULT_TOLERANCE = 300.0

_TILED_VALUE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP_VALUE = re.compile(r"[0-9]{1,15}")


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise ValueError("the webhook secret must be a non-empty string")
    return secret.encode("utf-8")


def _tiled_digest(key: bytes, body: bytes) -> bytes:
    """HMAC-SHA256(key, body): what ``X-Tiled-Signature`` carries, in hex."""
    return hmac.new(key, body, hashlib.sha256).digest()


def _standard_digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body)."""
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def standard_webhooks_secret(secret: str) -> str:
    """The secret a ``standardwebhooks.Webhook`` user passes to verify hookbook deliveries.

    ``"whsec_" + base64.b64encode(secret.encode("utf-8"))``: Standard Webhooks
    libraries base64-decode what follows ``whsec_`` and use those bytes as the
    HMAC key, which are then exactly the bytes hookbook signs with.
    """
    return "whsec_" + base64.b64encode(_key(secret)).decode("ascii")


def sign_headers(
    body: bytes,
    secret: str,
    event_id: str,
    *,
    timestamp: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The signature headers of one delivery attempt.

    Returns exactly four headers (``ts = timestamp if given else int(clock())``)::

        X-Tiled-Signature: sha256=<hex HMAC-SHA256(secret, body)>
        webhook-id:        event_id
        webhook-timestamp: str(ts)
        webhook-signature: v1,<base64 HMAC-SHA256(secret, f"{event_id}.{ts}.".encode() + body)>

    The key is ``secret.encode("utf-8")``. ``timestamp`` (integer Unix
    seconds) is meant to be taken afresh at every attempt.
    """
    key = _key(secret)
    if not event_id or not all(ch.isascii() and ch.isprintable() and ch != " " for ch in event_id):
        raise ValueError("event_id must be non-empty printable ASCII without spaces")
    ts = str(int(clock()) if timestamp is None else int(timestamp))
    standard = base64.b64encode(_standard_digest(key, event_id, ts, body)).decode("ascii")
    return {
        TILED_SIGNATURE_HEADER: "sha256=" + _tiled_digest(key, body).hex(),
        WEBHOOK_ID_HEADER: event_id,
        WEBHOOK_TIMESTAMP_HEADER: ts,
        WEBHOOK_SIGNATURE_HEADER: "v1," + standard,
    }


def _header_values(headers: Mapping[str, str] | Any) -> dict[str, list[str]]:
    """Header values by lower-cased name, repeated headers kept apart.

    Works for a plain dict, ``httpx.Headers`` (whose ``items()`` joins repeats
    with ", ", hence ``multi_items()``), werkzeug's and starlette's ``Headers``.
    """
    pairs: Iterable[tuple[str, str]]
    multi_items = getattr(headers, "multi_items", None)
    pairs = multi_items() if callable(multi_items) else headers.items()
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(str(name).lower(), []).append(str(value))
    return values


def _single(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name.lower())
    if not found:
        return None
    distinct = {v.strip() for v in found}
    if len(distinct) > 1:
        raise BadSignatureError(
            f"header {name} appears {len(found)} times with different values",
            header=name,
        )
    return distinct.pop()


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
    require_timestamp: bool = False,
) -> Literal["standard-webhooks", "tiled"]:
    """Check a delivery's signature; return the scheme that verified it.

    Header names are matched case-insensitively. The rules, in order:

    1. If any of ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``
       is present, Standard Webhooks decides: all three are required
       (:class:`.MissingSignatureError` names the missing one);
       ``|now - timestamp| <= tolerance`` or :class:`.StaleTimestampError`;
       one of the space-separated ``v1,<base64>`` entries must equal
       ``base64(HMAC-SHA256(secret, f"{id}.{timestamp}.".encode() + body))``
       (compared with :func:`hmac.compare_digest`) or
       :class:`.BadSignatureError`. ``X-Tiled-Signature`` is then ignored.
    2. Else, unless ``require_timestamp``, ``X-Tiled-Signature`` decides: it
       must be ``sha256=<hex HMAC-SHA256(secret, body)>``, otherwise
       :class:`.BadSignatureError` (malformed values included).
    3. Else :class:`.MissingSignatureError`.

    ``now`` defaults to ``time.time()``. Messages say which header failed and
    why, never the secret. Returns ``"standard-webhooks"`` or ``"tiled"``.
    """
    key = _key(secret)
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0 seconds")
    values = _header_values(headers)
    standard_names = (WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER)
    if any(values.get(name) for name in standard_names):
        _verify_standard(body, values, key, tolerance, time.time() if now is None else now)
        return SCHEME_STANDARD_WEBHOOKS
    tiled = _single(values, TILED_SIGNATURE_HEADER)
    if tiled and not require_timestamp:
        _verify_tiled(body, tiled, key)
        return SCHEME_TILED
    if tiled:
        raise MissingSignatureError(
            "only X-Tiled-Signature (body only, no timestamp) is present and a timestamped "
            "signature is required: webhook-id, webhook-timestamp, webhook-signature are missing",
            header=WEBHOOK_SIGNATURE_HEADER,
        )
    raise MissingSignatureError(
        "the delivery is not signed: no webhook-signature or X-Tiled-Signature header",
        header=WEBHOOK_SIGNATURE_HEADER,
    )


def _verify_tiled(body: bytes, value: str, key: bytes) -> None:
    match = _TILED_VALUE.fullmatch(value)
    if match is None:
        raise BadSignatureError(
            "X-Tiled-Signature is malformed: expected 'sha256=' and 64 hex digits",
            header=TILED_SIGNATURE_HEADER,
        )
    if not hmac.compare_digest(bytes.fromhex(match.group(1)), _tiled_digest(key, body)):
        raise BadSignatureError(
            "X-Tiled-Signature does not match the body (wrong secret or altered body)",
            header=TILED_SIGNATURE_HEADER,
        )


def _missing(name: str) -> MissingSignatureError:
    return MissingSignatureError(
        f"{name} header is missing (webhook-id, webhook-timestamp and webhook-signature "
        "go together)",
        header=name,
    )


def _seconds(value: float) -> str:
    """``300.0`` -> ``"300"``, ``300.25`` -> ``"300.2"``: seconds for messages."""
    return f"{value:.1f}".removesuffix(".0")


def _verify_standard(
    body: bytes, values: dict[str, list[str]], key: bytes, tolerance: float, now: float
) -> None:
    msg_id = _single(values, WEBHOOK_ID_HEADER)
    timestamp = _single(values, WEBHOOK_TIMESTAMP_HEADER)
    signatures = " ".join(values.get(WEBHOOK_SIGNATURE_HEADER, [])).split()
    if not msg_id:
        raise _missing(WEBHOOK_ID_HEADER)
    if not timestamp:
        raise _missing(WEBHOOK_TIMESTAMP_HEADER)
    if not signatures:
        raise _missing(WEBHOOK_SIGNATURE_HEADER)
    if _TIMESTAMP_VALUE.fullmatch(timestamp) is None:
        raise BadSignatureError(
            f"webhook-timestamp is not an integer number of Unix seconds: {timestamp[:40]!r}",
            header=WEBHOOK_TIMESTAMP_HEADER,
        )
    age = now - int(timestamp)
    if abs(age) > tolerance:
        when = f"{_seconds(age)} s old" if age > 0 else f"{_seconds(-age)} s in the future"
        raise StaleTimestampError(
            f"webhook-timestamp is {when}, outside the tolerance of {_seconds(tolerance)} s "
            "(a replayed delivery, or a clock out of sync)",
            header=WEBHOOK_TIMESTAMP_HEADER,
            age=age,
            tolerance=tolerance,
        )
    expected = _standard_digest(key, msg_id, timestamp, body)
    versions = []
    for entry in signatures:
        version, _, encoded = entry.partition(",")
        versions.append(version)
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(candidate, expected):
            return
    if "v1" not in versions:
        raise BadSignatureError(
            "webhook-signature has no v1 entry (expected 'v1,<base64>')",
            header=WEBHOOK_SIGNATURE_HEADER,
        )
    raise BadSignatureError(
        "webhook-signature: no v1 signature matches the body, webhook-id and "
        "webhook-timestamp (wrong secret or altered delivery)",
        header=WEBHOOK_SIGNATURE_HEADER,
    )
