"""One HTTP attempt of a delivery, to the address that was checked.

Before every attempt the target is resolved and checked again
(:func:`hookbook.url_safety.check_target`), and the request goes to that
checked IP address, keeping the original ``Host`` header and TLS server name,
so a DNS answer that changes between check and connect (rebinding) cannot
steer the request elsewhere. Proxy variables from the environment are
ignored (they would bypass the check); an explicitly configured egress proxy
is the one exception, and then the proxy enforces the rules. Redirects are
not followed and the response body is read up to a cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from .. import events as ev
from .._version import __version__
from ..errors import UnsafeURLError
from ..signing import sign_headers
from ..url_safety import CheckedTarget, Resolver, UrlPolicy, check_target
from .outbox import AttemptResult, Claim


@dataclass(frozen=True)
class SenderOptions:
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    response_excerpt_bytes: int
    egress_proxy: str | None = None


def delivery_headers(c: Claim, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of one attempt; signed afresh (a new ``webhook-timestamp``) each time."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"hookbook/{__version__}",
        "X-Tiled-Event-ID": c.event_id,
    }
    if secret is not None:
        headers.update(sign_headers(body, secret, c.event_id))
    return headers


def _pinned_request(
    client: httpx.AsyncClient,
    target: CheckedTarget,
    body: bytes,
    headers: dict[str, str],
    timeout: httpx.Timeout,
) -> tuple[httpx.Request, str]:
    url = httpx.URL(target.url)
    address = target.addresses[0]
    host_header = url.netloc.decode("ascii")
    pinned = url.copy_with(host=address)
    request = client.build_request(
        "POST",
        pinned,
        content=body,
        headers={**headers, "Host": host_header},
        timeout=timeout,
        extensions={"sni_hostname": url.host} if url.scheme == "https" else None,
    )
    return request, address


async def attempt(
    client: httpx.AsyncClient,
    c: Claim,
    secret: str | None,
    *,
    policy: UrlPolicy,
    resolver: Resolver,
    options: SenderOptions,
) -> AttemptResult:
    """Make one attempt; never raises for what the network or the endpoint did."""
    started_at = ev.now()
    start = time.perf_counter()
    body = c.body.encode()
    headers = delivery_headers(c, body, secret)
    timeout = httpx.Timeout(
        connect=options.connect_timeout,
        read=options.read_timeout,
        write=options.read_timeout,
        pool=options.connect_timeout,
    )
    address: str | None = None

    def result(
        status: int | None, error: str | None, excerpt: str | None, response_headers=None
    ) -> AttemptResult:
        return AttemptResult(
            started_at=started_at,
            duration_ms=(time.perf_counter() - start) * 1000,
            status_code=status,
            error=error,
            response_excerpt=excerpt,
            address=address,
            headers=dict(response_headers or {}),
        )

    try:
        if options.egress_proxy:
            request = client.build_request(
                "POST", c.url, content=body, headers=headers, timeout=timeout
            )
        else:
            target = await check_target(c.url, policy, resolver)
            request, address = _pinned_request(client, target, body, headers, timeout)
    except UnsafeURLError as exc:
        return result(None, f"target refused before sending: {exc.detail}", None)
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            if response.is_stream_consumed:  # built in memory (a MockTransport seam)
                chunks.append(response.content[: options.max_response_bytes])
            else:
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= options.max_response_bytes:
                        break
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        return result(None, f"timeout: {type(exc).__name__}", None)
    except httpx.TransportError as exc:
        return result(None, f"{type(exc).__name__}: {str(exc) or 'connection failed'}", None)
    raw = b"".join(chunks)[: options.response_excerpt_bytes]
    excerpt = raw.decode("utf-8", errors="replace") if raw else None
    error = None if response.is_success else f"HTTP {response.status_code}"
    return result(response.status_code, error, excerpt, response.headers)
