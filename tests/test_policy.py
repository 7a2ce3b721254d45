"""hookbook.webhooks.policy: backoff, Retry-After, classification and decisions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from hookbook.config import WebhookSettings
from hookbook.errors import ConfigurationError
from hookbook.webhooks.policy import (
    DEFAULT_RETRY_AFTER_CAP,
    DEFAULT_RETRY_SCHEDULE,
    JITTER,
    TESTING_RETRY_SCHEDULE,
    Decision,
    Verdict,
    check_schedule,
    classify,
    decide,
    parse_retry_after,
    retry_wait,
)

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


def fixed(value: float):
    return lambda: value


def test_defaults_match_tiled():
    assert DEFAULT_RETRY_SCHEDULE == (1.0, 5.0)  # 3 attempts, ~1 s then ~5 s
    assert JITTER == 0.2
    assert DEFAULT_RETRY_AFTER_CAP == 60.0


def test_the_defaults_have_one_home():
    from hookbook.testing import plugin

    fields = WebhookSettings.model_fields
    assert fields["retry_schedule"].default == DEFAULT_RETRY_SCHEDULE
    assert fields["retry_after_cap"].default == DEFAULT_RETRY_AFTER_CAP
    assert plugin.REALTIME_RETRY_SCHEDULE == DEFAULT_RETRY_SCHEDULE
    assert plugin.TESTING_RETRY_SCHEDULE == TESTING_RETRY_SCHEDULE == (0.01, 0.01)


# --- retry_wait ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "attempts", "rand", "expected"),
    [
        ((1.0, 5.0), 1, 0.5, 1.0),  # rand 0.5: no jitter
        ((1.0, 5.0), 2, 0.5, 5.0),
        ((1.0, 5.0), 1, 0.0, 0.8),  # lowest: -20 %
        ((1.0, 5.0), 2, 0.0, 4.0),
        ((1.0, 5.0), 1, 1.0, 1.2),  # the upper bound (rand() < 1 never quite reaches it)
        ((1.0, 5.0), 2, 0.75, 5.5),
        ((1.0, 5.0), 3, 0.5, None),  # exhausted: 3 attempts = len + 1
        ((1.0, 5.0), 4, 0.5, None),
        ((0.01, 0.01), 1, 0.0, 0.008),  # jitter proportional: stays in milliseconds
        ((0.01, 0.01), 2, 1.0, 0.012),
        ((0.0,), 1, 0.9, 0.0),
        ((), 1, 0.5, None),  # empty schedule: one attempt only
        ([2, 4, 8], 3, 0.5, 8.0),  # lists and ints work
        ([2, 4, 8], 4, 0.5, None),
    ],
)
def test_retry_wait_table(schedule, attempts, rand, expected):
    wait = retry_wait(schedule, attempts, rand=fixed(rand))
    if expected is None:
        assert wait is None
    else:
        assert wait == pytest.approx(expected)


def test_retry_wait_stays_within_jitter_bounds_with_real_randomness():
    for attempts, base in enumerate(DEFAULT_RETRY_SCHEDULE, start=1):
        for _ in range(200):
            wait = retry_wait(DEFAULT_RETRY_SCHEDULE, attempts)
            assert base * (1 - JITTER) <= wait < base * (1 + JITTER)


@pytest.mark.parametrize("attempts", [0, -1])
def test_retry_wait_needs_an_attempt(attempts):
    with pytest.raises(ValueError, match="attempts_made must be >= 1"):
        retry_wait(DEFAULT_RETRY_SCHEDULE, attempts)


# --- check_schedule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [([1, 5], (1.0, 5.0)), ((0.01, 0.01), (0.01, 0.01)), ([], ()), ([0], (0.0,))],
)
def test_check_schedule_accepts(schedule, expected):
    assert check_schedule(schedule) == expected


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("1, 5", "must be a list"),
        (5, "must be a list"),
        ([1, -1], "[1] = -1"),
        ([float("nan")], "[0] = nan"),
        ([float("inf")], "[0] = inf"),
        ([True], "[0] = True"),
        (["1"], "[0] = '1'"),
        ([1] * 21, "at most 20 retries, not 21"),
    ],
)
def test_check_schedule_refuses(schedule, message):
    with pytest.raises(ConfigurationError) as info:
        check_schedule(schedule)
    assert "webhooks.retry_schedule" in str(info.value)
    assert message in str(info.value)
    # The configuration applies the same rule (one home for it).
    with pytest.raises(ConfigurationError) as info:
        WebhookSettings(retry_schedule=schedule)
    assert message in str(info.value)


# --- parse_retry_after -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1" * 16, math.inf),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # obsolete RFC 850
        ("Wed Oct 21 07:28:10 2015", 10.0),  # asctime, taken as UTC
        ("Wed, 21 Oct 2015 09:28:05 +0200", 5.0),  # an offset is respected
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: no wait
        ("-5", None),
        ("1.5", None),
        ("+5", None),
        ("5s", None),
        ("soon", None),
        ("١٢٠", None),  # non-ASCII digits
        ("Wed, 21 Oct 2015", None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after_table(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_naive_now_is_utc():
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=naive) == 30.0


def test_parse_retry_after_aware_now_in_another_zone():
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0


def test_parse_retry_after_defaults_to_the_current_time():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT") == 0.0  # long past
    assert parse_retry_after("42") == 42.0


# --- classify ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (200, "delivered", None),
        (201, "delivered", None),
        (204, "delivered", None),
        (299, "delivered", None),
        (410, "gone", "HTTP 410 Gone"),
        (None, "retry", "no response"),
        (100, "retry", "HTTP 100"),
        (301, "retry", "HTTP 301 (redirects are not followed)"),
        (302, "retry", "HTTP 302 (redirects are not followed)"),
        (307, "retry", "HTTP 307 (redirects are not followed)"),
        (400, "retry", "HTTP 400"),
        (401, "retry", "HTTP 401"),
        (404, "retry", "HTTP 404"),
        (409, "retry", "HTTP 409"),
        (429, "retry", "HTTP 429"),
        (500, "retry", "HTTP 500"),
        (502, "retry", "HTTP 502"),
        (503, "retry", "HTTP 503"),
        (504, "retry", "HTTP 504"),
    ],
)
def test_classify_table(status, kind, reason):
    verdict = classify(status, {})
    assert verdict == Verdict(kind, status, retry_after=None, reason=reason)


def test_classify_transport_error_carries_its_description():
    verdict = classify(None, None, error="ConnectError: connection refused")
    assert verdict == Verdict("retry", None, reason="ConnectError: connection refused")


@pytest.mark.parametrize(
    ("status", "headers", "cap", "retry_after"),
    [
        (429, {"Retry-After": "10"}, 60.0, 10.0),
        (503, {"Retry-After": "10"}, 60.0, 10.0),
        (429, {"retry-after": "10"}, 60.0, 10.0),  # case-insensitive
        (429, {"RETRY-AFTER": "10"}, 60.0, 10.0),
        (429, httpx.Headers({"Retry-After": "10"}), 60.0, 10.0),
        (429, {"Retry-After": "3600"}, 60.0, 60.0),  # capped
        (429, {"Retry-After": "3600"}, 5.0, 5.0),
        (429, {"Retry-After": "9" * 400}, 60.0, 60.0),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:20 GMT"}, 60.0, 20.0),
        (503, {"Retry-After": "Thu, 22 Oct 2015 07:28:00 GMT"}, 60.0, 60.0),
        (429, {"Retry-After": "soon"}, 60.0, None),
        (429, {}, 60.0, None),
        (429, None, 60.0, None),
        (500, {"Retry-After": "10"}, 60.0, None),  # only 429 and 503
        (502, {"Retry-After": "10"}, 60.0, None),
        (301, {"Retry-After": "10"}, 60.0, None),
        (200, {"Retry-After": "10"}, 60.0, None),
    ],
)
def test_classify_retry_after(status, headers, cap, retry_after):
    verdict = classify(status, headers, retry_after_cap=cap, now=NOW)
    assert verdict.retry_after == retry_after


def test_classify_refuses_a_negative_cap():
    with pytest.raises(ValueError, match="retry_after_cap"):
        classify(429, {}, retry_after_cap=-1)


# --- decide ------------------------------------------------------------------------------

HALF = fixed(0.5)  # no jitter


@pytest.mark.parametrize(
    ("verdict", "attempts", "expected"),
    [
        (Verdict("delivered", 200), 1, Decision("success", None, False, None)),
        (Verdict("delivered", 204), 3, Decision("success", None, False, None)),
        (
            Verdict("gone", 410, reason="HTTP 410 Gone"),
            1,
            Decision(
                "failed",
                None,
                True,
                "HTTP 410 Gone: the receiver asked for no more deliveries; webhook disabled",
            ),
        ),
        (Verdict("retry", 500, reason="HTTP 500"), 1, Decision("pending", 1.0, False, "HTTP 500")),
        (Verdict("retry", 500, reason="HTTP 500"), 2, Decision("pending", 5.0, False, "HTTP 500")),
        (
            Verdict("retry", 500, reason="HTTP 500"),
            3,
            Decision("failed", None, False, "gave up after 3 attempts: HTTP 500"),
        ),
        (
            Verdict("retry", None, reason="ConnectError: refused"),
            3,
            Decision("failed", None, False, "gave up after 3 attempts: ConnectError: refused"),
        ),
        # Retry-After longer than the scheduled wait wins; shorter does not
        (
            Verdict("retry", 429, retry_after=30.0, reason="HTTP 429"),
            1,
            Decision("pending", 30.0, False, "HTTP 429"),
        ),
        (
            Verdict("retry", 503, retry_after=0.5, reason="HTTP 503"),
            2,
            Decision("pending", 5.0, False, "HTTP 503"),
        ),
        # Retry-After never adds attempts
        (
            Verdict("retry", 429, retry_after=30.0, reason="HTTP 429"),
            3,
            Decision("failed", None, False, "gave up after 3 attempts: HTTP 429"),
        ),
    ],
)
def test_decide_table(verdict, attempts, expected):
    assert decide(verdict, attempts, DEFAULT_RETRY_SCHEDULE, rand=HALF) == expected


def test_decide_applies_jitter():
    verdict = Verdict("retry", 500, reason="HTTP 500")
    assert decide(verdict, 1, (1.0, 5.0), rand=fixed(0.0)).wait == pytest.approx(0.8)
    assert decide(verdict, 2, (1.0, 5.0), rand=fixed(0.75)).wait == pytest.approx(5.5)


def test_decide_single_attempt_schedule_says_attempt_singular():
    decision = decide(Verdict("retry", 500, reason="HTTP 500"), 1, ())
    assert decision == Decision("failed", None, False, "gave up after 1 attempt: HTTP 500")


def test_testing_schedule_stays_in_milliseconds():
    verdict = classify(500, {})
    for attempts in (1, 2):
        decision = decide(verdict, attempts, (0.01, 0.01))
        assert decision.outcome == "pending"
        assert 0.008 <= decision.wait < 0.012
    assert decide(verdict, 3, (0.01, 0.01)).outcome == "failed"


@pytest.mark.parametrize(
    ("responses", "outcome", "attempts", "disabled"),
    [
        ([200], "success", 1, False),
        ([500, 200], "success", 2, False),
        ([None, 503, 204], "success", 3, False),
        ([500, 500, 500], "failed", 3, False),
        ([None, None, None], "failed", 3, False),
        ([302, 302, 302], "failed", 3, False),
        ([500, 410], "failed", 2, True),
        ([410], "failed", 1, True),
    ],
)
def test_whole_delivery_runs(responses, outcome, attempts, disabled):
    """Drive classify + decide as the worker does, one response per attempt."""
    made = 0
    decision = None
    for status in responses:
        made += 1
        decision = decide(classify(status, {}), made, DEFAULT_RETRY_SCHEDULE, rand=HALF)
        if decision.outcome != "pending":
            break
    assert decision is not None
    assert (decision.outcome, made, decision.disable_webhook) == (outcome, attempts, disabled)


def test_verdict_and_decision_are_frozen():
    with pytest.raises(AttributeError):
        Verdict("retry", 500).kind = "delivered"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Decision("success", None, False, None).outcome = "failed"  # type: ignore[misc]
