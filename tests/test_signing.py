"""hookbook.signing: both signature schemes, verification and its failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import httpx
import pytest
import standardwebhooks
import werkzeug.datastructures

from hookbook.errors import (
    BadSignatureError,
    MissingSignatureError,
    SignatureError,
    StaleTimestampError,
)
from hookbook.signing import sign_headers, standard_webhooks_secret, verify

SECRET = "s3cr3t-ünïcode"
BODY = b'{"type": "container-child-created", "key": "temperature"}'
EVENT_ID = "7f1c0a9e5b3d4c2a8e6f1b0d9c8a7e6f"
T0 = 1_700_000_000


def signed(body: bytes = BODY, secret: str = SECRET, ts: int = T0) -> dict[str, str]:
    return sign_headers(body, secret, EVENT_ID, timestamp=ts)


def tiled_only(headers: dict[str, str]) -> dict[str, str]:
    return {"X-Tiled-Signature": headers["X-Tiled-Signature"]}


def standard_only(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("webhook-")}


# --- signing -----------------------------------------------------------------


def test_sign_headers_returns_exactly_the_four_headers():
    headers = signed()
    assert set(headers) == {
        "X-Tiled-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert headers["webhook-id"] == EVENT_ID
    assert headers["webhook-timestamp"] == str(T0)


def test_tiled_signature_matches_tiled_sign_formula():
    # Tiled's _sign: "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signed()["X-Tiled-Signature"] == expected


def test_tiled_signature_is_body_only():
    assert signed(ts=T0)["X-Tiled-Signature"] == signed(ts=T0 + 99)["X-Tiled-Signature"]


def test_standard_signature_formula():
    to_sign = f"{EVENT_ID}.{T0}.".encode() + BODY
    digest = hmac.new(SECRET.encode("utf-8"), to_sign, hashlib.sha256).digest()
    assert signed()["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_standard_signature_covers_the_timestamp():
    assert signed(ts=T0)["webhook-signature"] != signed(ts=T0 + 1)["webhook-signature"]


def test_timestamp_comes_from_the_injected_clock():
    headers = sign_headers(BODY, SECRET, EVENT_ID, clock=lambda: 1234.99)
    assert headers["webhook-timestamp"] == "1234"
    assert verify(BODY, headers, SECRET, now=1234) == "standard-webhooks"


def test_explicit_timestamp_wins_over_clock():
    headers = sign_headers(BODY, SECRET, EVENT_ID, timestamp=42, clock=lambda: 1e9)
    assert headers["webhook-timestamp"] == "42"


@pytest.mark.parametrize("event_id", ["", "a b", "a\r\nX-Evil: 1", "ïd"])
def test_sign_headers_refuses_event_ids_that_break_headers(event_id):
    with pytest.raises(ValueError, match="event_id"):
        sign_headers(BODY, SECRET, event_id, timestamp=T0)


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="secret"):
        sign_headers(BODY, "", EVENT_ID, timestamp=T0)
    with pytest.raises(ValueError, match="secret"):
        verify(BODY, signed(), "")


def test_standard_webhooks_secret_mapping():
    assert standard_webhooks_secret("abc") == "whsec_YWJj"
    assert standard_webhooks_secret(SECRET) == "whsec_" + base64.b64encode(
        SECRET.encode("utf-8")
    ).decode("ascii")


# --- interoperability with the real standardwebhooks package ------------------


def test_standardwebhooks_package_verifies_sign_headers_output():
    headers = sign_headers(BODY, SECRET, EVENT_ID)  # real clock: the package uses it too
    payload = standardwebhooks.Webhook(standard_webhooks_secret(SECRET)).verify(BODY, headers)
    assert payload == {"type": "container-child-created", "key": "temperature"}


def test_standardwebhooks_package_rejects_a_different_secret():
    headers = sign_headers(BODY, SECRET, EVENT_ID)
    wh = standardwebhooks.Webhook(standard_webhooks_secret("other"))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        wh.verify(BODY, headers)


def test_verify_accepts_what_the_standardwebhooks_package_signs():
    wh = standardwebhooks.Webhook(standard_webhooks_secret(SECRET))
    signature = wh.sign(EVENT_ID, datetime.fromtimestamp(T0, tz=UTC), BODY.decode())
    headers = {"webhook-id": EVENT_ID, "webhook-timestamp": str(T0), "webhook-signature": signature}
    assert verify(BODY, headers, SECRET, now=T0) == "standard-webhooks"


# --- verification: round trips --------------------------------------------------


def test_round_trip_uses_standard_webhooks_when_present():
    assert verify(BODY, signed(), SECRET, now=T0) == "standard-webhooks"


def test_round_trip_tiled_only():
    assert verify(BODY, tiled_only(signed()), SECRET, now=T0) == "tiled"


def test_round_trip_standard_only():
    assert verify(BODY, standard_only(signed()), SECRET, now=T0) == "standard-webhooks"


def test_tiled_signature_in_uppercase_hex_verifies():
    value = signed()["X-Tiled-Signature"]
    headers = {"X-Tiled-Signature": "sha256=" + value.removeprefix("sha256=").upper()}
    assert verify(BODY, headers, SECRET) == "tiled"


@pytest.mark.parametrize(
    "transform",
    [
        lambda h: {k.lower(): v for k, v in h.items()},
        lambda h: {k.upper(): v for k, v in h.items()},
        lambda h: {k.title(): v for k, v in h.items()},
        lambda h: httpx.Headers(h),
        lambda h: werkzeug.datastructures.Headers(list(h.items())),
    ],
    ids=["lower", "upper", "title", "httpx", "werkzeug"],
)
def test_header_lookup_is_case_insensitive(transform):
    headers = signed()
    assert verify(BODY, transform(headers), SECRET, now=T0) == "standard-webhooks"
    assert verify(BODY, transform(tiled_only(headers)), SECRET, now=T0) == "tiled"


# --- verification: several signatures -----------------------------------------


def test_any_matching_v1_entry_verifies():
    headers = signed()
    other = signed(secret="old-secret")["webhook-signature"]
    headers["webhook-signature"] = (
        f"{other} v1a,bm90LWFwcGxpY2FibGU= {headers['webhook-signature']}"
    )
    assert verify(BODY, headers, SECRET, now=T0) == "standard-webhooks"
    assert verify(BODY, headers, "old-secret", now=T0) == "standard-webhooks"


def test_extra_spaces_and_garbage_entries_are_tolerated_around_a_match():
    headers = signed()
    headers["webhook-signature"] = f"  v1,!!notbase64!!  nocomma   {headers['webhook-signature']}  "
    assert verify(BODY, headers, SECRET, now=T0) == "standard-webhooks"


def test_repeated_webhook_signature_headers_are_all_considered():
    good = signed()
    bad = signed(secret="other")["webhook-signature"]
    for headers in (
        httpx.Headers([*standard_only(good).items(), ("webhook-signature", bad)]),
        werkzeug.datastructures.Headers([("webhook-signature", bad), *standard_only(good).items()]),
    ):
        assert verify(BODY, headers, SECRET, now=T0) == "standard-webhooks"


def test_no_matching_entry_among_several_is_bad():
    headers = signed()
    headers["webhook-signature"] = " ".join(
        signed(secret=s)["webhook-signature"] for s in ("a", "b", "c")
    )
    with pytest.raises(BadSignatureError, match="no v1 signature matches"):
        verify(BODY, headers, SECRET, now=T0)


def test_no_v1_entry_at_all_is_bad():
    headers = signed()
    headers["webhook-signature"] = "v2,abc v1a,def"
    with pytest.raises(BadSignatureError, match="no v1 entry"):
        verify(BODY, headers, SECRET, now=T0)


# --- verification: failures ------------------------------------------------------


def test_unsigned_delivery_is_missing():
    with pytest.raises(MissingSignatureError, match="not signed"):
        verify(BODY, {"Content-Type": "application/json"}, SECRET)


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_headers_go_together(drop):
    headers = signed()
    del headers[drop]
    # even though X-Tiled-Signature is valid: the standard headers decide when present
    with pytest.raises(MissingSignatureError, match=f"{drop} header is missing") as info:
        verify(BODY, headers, SECRET, now=T0)
    assert info.value.context["header"] == drop


def test_empty_standard_header_counts_as_missing():
    headers = signed()
    headers["webhook-id"] = ""
    with pytest.raises(MissingSignatureError, match="webhook-id"):
        verify(BODY, headers, SECRET, now=T0)


def test_wrong_secret_is_bad_for_both_schemes():
    with pytest.raises(BadSignatureError, match="webhook-signature"):
        verify(BODY, signed(), "wrong", now=T0)
    with pytest.raises(BadSignatureError, match="X-Tiled-Signature does not match"):
        verify(BODY, tiled_only(signed()), "wrong", now=T0)


def test_altered_body_is_bad_for_both_schemes():
    altered = BODY.replace(b"temperature", b"pressure")
    with pytest.raises(BadSignatureError):
        verify(altered, signed(), SECRET, now=T0)
    with pytest.raises(BadSignatureError):
        verify(altered, tiled_only(signed()), SECRET, now=T0)


def test_altered_event_id_is_bad():
    headers = signed()
    headers["webhook-id"] = "another-id"
    with pytest.raises(BadSignatureError):
        verify(BODY, headers, SECRET, now=T0)


def test_altered_timestamp_is_bad_even_inside_the_tolerance():
    headers = signed()
    headers["webhook-timestamp"] = str(T0 + 1)
    with pytest.raises(BadSignatureError):
        verify(BODY, headers, SECRET, now=T0)


@pytest.mark.parametrize(
    "value",
    [
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "g" * 64,
        "sha256=" + "ab" * 31,
        "sha256=" + "ab" * 33,
        "SHA256=" + "0" * 64,
        "0" * 64,
    ],
)
def test_malformed_tiled_signature_is_bad(value):
    with pytest.raises(BadSignatureError, match="X-Tiled-Signature is malformed"):
        verify(BODY, {"X-Tiled-Signature": value}, SECRET)


def test_empty_tiled_signature_counts_as_missing():
    with pytest.raises(MissingSignatureError, match="not signed"):
        verify(BODY, {"X-Tiled-Signature": "  "}, SECRET)


@pytest.mark.parametrize("value", ["-5", "1.5", "soon", "1e9", " ", "9" * 40])
def test_malformed_timestamp_is_bad(value):
    headers = signed()
    headers["webhook-timestamp"] = value
    with pytest.raises(SignatureError) as info:
        verify(BODY, headers, SECRET, now=T0)
    # a blank value counts as missing, the rest as malformed
    expected = MissingSignatureError if not value.strip() else BadSignatureError
    assert type(info.value) is expected


def test_conflicting_repeated_timestamp_is_bad():
    headers = httpx.Headers([*signed().items(), ("webhook-timestamp", str(T0 + 1))])
    with pytest.raises(BadSignatureError, match="webhook-timestamp appears 2 times"):
        verify(BODY, headers, SECRET, now=T0)


# --- tolerance and replay ---------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (0, True),
        (300, True),  # exactly at the edge: accepted
        (-300, True),
        (300.5, False),
        (-300.5, False),
        (301, False),
        (86_400, False),
    ],
)
def test_tolerance_edges(offset, ok):
    headers = signed()
    if ok:
        assert verify(BODY, headers, SECRET, now=T0 + offset) == "standard-webhooks"
    else:
        with pytest.raises(StaleTimestampError):
            verify(BODY, headers, SECRET, now=T0 + offset)


def test_custom_tolerance():
    headers = signed()
    assert verify(BODY, headers, SECRET, now=T0 + 10, tolerance=10) == "standard-webhooks"
    with pytest.raises(StaleTimestampError):
        verify(BODY, headers, SECRET, now=T0 + 11, tolerance=10)
    with pytest.raises(ValueError, match="tolerance"):
        verify(BODY, headers, SECRET, now=T0, tolerance=-1)


def test_stale_message_says_how_old_and_in_which_direction():
    with pytest.raises(StaleTimestampError, match=r"is 3600 s old.*tolerance of 300 s") as info:
        verify(BODY, signed(), SECRET, now=T0 + 3600)
    assert info.value.context["age"] == 3600
    with pytest.raises(StaleTimestampError, match=r"is 900 s in the future"):
        verify(BODY, signed(), SECRET, now=T0 - 900)


def test_default_now_is_the_real_clock():
    assert verify(BODY, sign_headers(BODY, SECRET, EVENT_ID), SECRET) == "standard-webhooks"
    with pytest.raises(StaleTimestampError):
        verify(
            BODY, sign_headers(BODY, SECRET, EVENT_ID, timestamp=int(time.time()) - 3600), SECRET
        )


def test_captured_delivery_replayed_later_is_rejected():
    captured = signed()
    # its body-only X-Tiled-Signature is still valid...
    assert verify(BODY, tiled_only(captured), SECRET, now=T0 + 3600) == "tiled"
    # ...but the timestamped headers beside it decide, and they are stale
    with pytest.raises(StaleTimestampError):
        verify(BODY, captured, SECRET, now=T0 + 3600)


def test_require_timestamp_refuses_body_only_signatures():
    captured = signed()
    with pytest.raises(MissingSignatureError, match="timestamped signature is required"):
        verify(BODY, tiled_only(captured), SECRET, now=T0, require_timestamp=True)
    assert verify(BODY, captured, SECRET, now=T0, require_timestamp=True) == "standard-webhooks"


# --- messages never leak the secret ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Tiled-Signature": "garbage"},
        {"X-Tiled-Signature": "sha256=" + "0" * 64},
        {"webhook-id": "x"},
        {"webhook-id": "x", "webhook-timestamp": str(T0), "webhook-signature": "v1,AAAA"},
        {"webhook-id": "x", "webhook-timestamp": "0", "webhook-signature": "v1,AAAA"},
    ],
)
def test_error_messages_never_contain_the_secret(headers):
    with pytest.raises(SignatureError) as info:
        verify(BODY, headers, SECRET, now=T0)
    text = f"{info.value} {info.value.to_json()}"
    assert SECRET not in text
    assert base64.b64encode(SECRET.encode()).decode() not in text
    assert info.value.status_code == 401
