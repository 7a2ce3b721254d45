"""One HTTP attempt of a delivery, to an address that was checked, over kept-alive pools.

Deliveries go out through aiohttp, whose CPU per POST measured 5-7x below
httpx's (``bench/bench_http_clients.py``; the numbers are in
``bench/README.md``). Its connection pool is keyed by host name, port and TLS
settings, so a connection verified for one host name never carries another
host name's delivery, even when both resolve to one address; and each key's
pool is small (``max_in_flight_per_host`` connections) and looked up by key,
not scanned.

The address check (:func:`hookbook.url_safety.check_target`) sits where a
connection is opened: the pool's resolver (:class:`CheckingResolver`)
resolves the host with the injected resolver, checks *every* address and
hands only checked addresses to the connector, which connects to one of them
(the URL's host stays the ``Host`` header and the TLS server name). A
request that reuses a pooled connection therefore reuses the check made for
that exact connection; a new connection is always checked afresh, so DNS
rebinding has no window. Literal IP URLs are checked once per URL (there is
nothing to resolve). The URL's syntax is checked once per URL.

Proxy variables from the environment are ignored (they would bypass the
check); an explicitly configured egress proxy is the one exception, and then
the proxy enforces the rules. Redirects are not followed, the response body
is read up to a cap, timeouts are set.

A test may inject an ``httpx`` transport (``Seams.transport``, e.g.
``httpx.MockTransport``): attempts then go through ``httpx`` over it, checked
before every attempt and pinned to the checked address (original ``Host``
header, ``sni_hostname`` extension), which is what those tests look at.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from .._version import __version__
from ..errors import InvalidURLError, UnsafeURLError
from ..signing import sign_headers
from ..url_safety import Resolver, UrlPolicy, check_target, check_url_syntax, normalize_host
from .clock import Clock
from .outbox import AttemptResult, Claim


@dataclass(frozen=True)
class SenderOptions:
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    response_excerpt_bytes: int
    connections_per_endpoint: int = 8
    connections: int = 64
    egress_proxy: str | None = None
    ca_bundle: str | None = None


def delivery_headers(claim: Claim, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of one attempt; signed afresh (a new ``webhook-timestamp``) each time."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"hookbook/{__version__}",
        "X-Tiled-Event-ID": claim.event_id,
    }
    if secret is not None:
        headers.update(sign_headers(body, secret, claim.event_id))
    return headers


class _Refused(OSError):
    """The resolver's refusal of a target, carried through aiohttp's connector."""

    def __init__(self, error: UnsafeURLError) -> None:
        super().__init__(error.detail)
        self.error = error


class CheckingResolver(AbstractResolver):
    """aiohttp's resolver for the delivery pools: resolves with the injected resolver
    and returns the addresses only if every one passes the target rules."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # The scheme was checked with the URL; the address rules do not depend on it.
        try:
            target = await check_target(f"https://{host}:{port}/", self.policy, self.resolver)
        except UnsafeURLError as exc:
            raise _Refused(exc) from None
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in target.addresses
        ]

    async def close(self) -> None:
        pass


class Sender:
    """Makes attempts; one per call to :meth:`attempt`."""

    def __init__(
        self,
        options: SenderOptions,
        *,
        policy: UrlPolicy,
        resolver: Resolver,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options
        self.policy = policy
        self.resolver = resolver
        self.clock = clock
        self._seam = transport
        self._session: aiohttp.ClientSession | None = None
        self._literals_passed: set[str] = set()
        self._httpx: httpx.AsyncClient | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=options.connect_timeout,
            sock_connect=options.connect_timeout,
            sock_read=options.read_timeout,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        bundle = self.options.ca_bundle
        if bundle:
            return ssl.create_default_context(cafile=bundle)
        return httpx.create_ssl_context(trust_env=False)  # the system store, or certifi's

    def _aiohttp(self) -> aiohttp.ClientSession:
        if self._session is None:
            proxied = self.options.egress_proxy is not None  # the proxy enforces the rules
            connector = aiohttp.TCPConnector(
                limit=self.options.connections,
                limit_per_host=self.options.connections_per_endpoint,
                resolver=None if proxied else CheckingResolver(self.policy, self.resolver),
                use_dns_cache=proxied,  # unproxied, every new connection is resolved and checked
                ssl=self._ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    async def attempt(self, claim: Claim, secret: str | None) -> AttemptResult:
        """Make one attempt; never raises for what the network or the endpoint did."""
        started_at = self.clock.now()
        start = time.perf_counter()
        body = claim.body.encode()
        headers = delivery_headers(claim, body, secret)
        post = self._post_httpx if self._seam is not None else self._post_aiohttp
        status, response_headers, raw, address, error = await post(claim.url, body, headers)
        excerpt = None
        if raw:
            excerpt = raw[: self.options.response_excerpt_bytes].decode("utf-8", errors="replace")
        if error is None and not 200 <= status <= 299:  # type: ignore[operator]  # no error: a status
            error = f"HTTP {status}"
        return AttemptResult(
            started_at=started_at,
            duration_ms=(time.perf_counter() - start) * 1000,
            status_code=status,
            error=error,
            response_excerpt=excerpt,
            address=address,
            headers=response_headers,
        )

    # ---- aiohttp (real deliveries) ------------------------------------------

    async def _post_aiohttp(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        try:
            checked = _checked_url(url, self.policy)
        except UnsafeURLError as exc:
            return _refused(exc)
        if (
            checked.literal is not None
            and self.options.egress_proxy is None
            and checked.url not in self._literals_passed
        ):
            try:
                await check_target(checked.url, self.policy, self.resolver)
            except UnsafeURLError as exc:
                return _refused(exc)
            # An address written in the URL never changes: its check holds for good.
            self._literals_passed.add(checked.url)
        address = None
        try:
            async with self._aiohttp().post(
                checked.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self.options.egress_proxy,
            ) as response:
                connection = response.connection
                if connection is not None and connection.transport is not None:
                    peer = connection.transport.get_extra_info("peername")
                    address = peer[0] if peer else None
                raw = await _read_capped(response.content, self.options.max_response_bytes)
                return response.status, dict(response.headers), raw, address, None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _Refused):
                return _refused(exc.os_error.error)
            return None, {}, b"", address, f"ConnectError: {exc.os_error or exc}"
        except TimeoutError as exc:
            return None, {}, b"", address, f"timeout: {_timeout_kind(exc)}"
        except aiohttp.ClientError as exc:
            return None, {}, b"", address, f"{type(exc).__name__}: {exc or 'connection failed'}"

    # ---- httpx over an injected transport (tests) ----------------------------

    async def _post_httpx(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(
                transport=self._seam, trust_env=False, follow_redirects=False
            )
        client = self._httpx
        try:
            target = await check_target(url, self.policy, self.resolver)
        except UnsafeURLError as exc:
            return _refused(exc)
        parsed = httpx.URL(target.url)
        address = target.addresses[0]
        request = client.build_request(
            "POST",
            parsed.copy_with(host=address),
            content=body,
            headers={**headers, "Host": parsed.netloc.decode("ascii")},
            timeout=httpx.Timeout(
                connect=self.options.connect_timeout,
                read=self.options.read_timeout,
                write=self.options.read_timeout,
                pool=self.options.connect_timeout,
            ),
            extensions={"sni_hostname": parsed.host} if parsed.scheme == "https" else None,
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_stream_consumed:  # built in memory (a MockTransport)
                    raw = response.content[: self.options.max_response_bytes]
                else:
                    raw = await _read_capped(response.aiter_raw(), self.options.max_response_bytes)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            return None, {}, b"", address, f"timeout: {type(exc).__name__}"
        except httpx.TransportError as exc:
            return None, {}, b"", address, f"{type(exc).__name__}: {exc or 'connection failed'}"
        return response.status_code, dict(response.headers), raw, address, None


#: (status, response headers, body read, address connected to, error)
_Answer = tuple[int | None, dict[str, str], bytes, str | None, str | None]


def _refused(exc: UnsafeURLError) -> _Answer:
    return None, {}, b"", None, f"target refused before sending: {exc.detail}"


def _timeout_kind(exc: TimeoutError) -> str:
    if isinstance(exc, aiohttp.ServerTimeoutError | aiohttp.ConnectionTimeoutError):
        return "ConnectTimeout" if "connect" in str(exc).lower() else "ReadTimeout"
    return "ReadTimeout"


@dataclass(frozen=True)
class _CheckedUrl:
    url: str
    literal: str | None  # the address, when the host is an IP literal


@functools.lru_cache(maxsize=4096)
def _checked_url(url: str, policy: UrlPolicy) -> _CheckedUrl:
    """The URL's syntax, checked once per URL (a pure check; raises UnsafeURLError)."""
    try:
        normalised = check_url_syntax(
            url, allow_http=policy.allow_http, max_length=policy.max_url_length
        )
    except InvalidURLError as exc:
        raise UnsafeURLError(exc.detail, reason="invalid-url") from None
    host = normalize_host(httpx.URL(normalised).host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _CheckedUrl(normalised, None)
    return _CheckedUrl(normalised, host)


async def _read_capped(stream: Any, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    iterator = stream.iter_any() if hasattr(stream, "iter_any") else stream
    async for chunk in iterator:
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(chunks)[:cap]
