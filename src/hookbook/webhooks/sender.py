"""One HTTP attempt of a delivery, to the address that was checked, over a kept-alive pool.

Before an attempt the target is resolved and checked
(:func:`hookbook.url_safety.check_target`), and the request goes to that
checked IP address, keeping the original ``Host`` header and TLS server name,
so a DNS answer that changes between check and connect (rebinding) cannot
steer the request elsewhere.

Connections are kept alive in a small pool per *endpoint key*: scheme,
checked address, port and TLS server name. A connection verified for one
host name therefore never carries another host name's delivery, even when
both resolve to one address; and each pool is small (at most
``max_in_flight_per_host`` connections), so finding a free connection is cheap.
The address check of a URL is reused only while its pool still holds a
connection to that exact address: the request then goes over a connection
that was opened to a checked address. Otherwise the host is resolved and
checked again.

Proxy variables from the environment are ignored (they would bypass the
check); an explicitly configured egress proxy is the one exception, and then
the proxy enforces the rules. Redirects are not followed and the response
body is read up to a cap.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from .._version import __version__
from ..errors import UnsafeURLError
from ..signing import sign_headers
from ..url_safety import CheckedTarget, Resolver, UrlPolicy, check_target
from .clock import Clock
from .outbox import AttemptResult, Claim

#: Pools kept for endpoints not used lately are closed beyond this many.
MAX_POOLS = 256

_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@dataclass(frozen=True)
class SenderOptions:
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    response_excerpt_bytes: int
    connections_per_endpoint: int = 8
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


#: (scheme, checked address, port, TLS server name or None for http)
PoolKey = tuple[str, str, int, str | None]


@dataclass
class _Route:
    """Where a URL's requests go: the checked target, its pool, and the pinned URL."""

    target: CheckedTarget
    key: PoolKey
    pinned: httpx.URL
    host_header: str


class Sender:
    """Makes attempts. ``transport`` (a test seam, e.g. ``httpx.MockTransport``)
    replaces the per-endpoint pools with one client over that transport."""

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
        self.timeout = httpx.Timeout(
            connect=options.connect_timeout,
            read=options.read_timeout,
            write=options.read_timeout,
            pool=options.connect_timeout,
        )
        self._seam = transport
        self._ssl: ssl.SSLContext | None = None
        self._clients: OrderedDict[PoolKey | None, httpx.AsyncClient] = OrderedDict()
        self._routes: dict[str, _Route] = {}

    # ---- pools --------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the CA store costs milliseconds: once per sender
            bundle = self.options.ca_bundle
            self._ssl = (
                ssl.create_default_context(cafile=bundle)
                if bundle
                else httpx.create_ssl_context(trust_env=False)
            )
        return self._ssl

    def _new_client(self, key: PoolKey | None) -> httpx.AsyncClient:
        if self._seam is not None:
            transport = self._seam
        else:
            per_pool = self.options.connections_per_endpoint
            transport = httpx.AsyncHTTPTransport(
                retries=0,
                verify=self._ssl_context(),
                proxy=self.options.egress_proxy if key is None else None,
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                socket_options=_NODELAY,
            )
        return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)

    async def _client(self, key: PoolKey | None) -> httpx.AsyncClient:
        if self._seam is not None:
            key = None
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = self._clients[key] = self._new_client(key)
        while len(self._clients) > MAX_POOLS:
            _, oldest = self._clients.popitem(last=False)
            await oldest.aclose()
        return client

    def _has_connection(self, key: PoolKey) -> bool:
        """Whether the pool for ``key`` holds an open connection (to its checked address)."""
        client = self._clients.get(key)
        if client is None or self._seam is not None:
            return False
        pool = getattr(client._transport, "_pool", None)  # httpx's AsyncHTTPTransport
        connections = getattr(pool, "connections", ())
        return any(not connection.is_closed() for connection in connections)

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        self._routes.clear()
        for client in clients:
            await client.aclose()

    # ---- one attempt --------------------------------------------------------

    async def _route(self, url: str) -> _Route:
        """The checked route for ``url``: reused while its pool keeps a connection to
        the checked address, else resolved and checked again."""
        route = self._routes.get(url)
        if route is not None and self._has_connection(route.key):
            return route
        target = await check_target(url, self.policy, self.resolver)
        parsed = httpx.URL(target.url)
        address = target.addresses[0]
        server_name = parsed.host if parsed.scheme == "https" else None
        route = _Route(
            target=target,
            key=(parsed.scheme, address, target.port, server_name),
            pinned=parsed.copy_with(host=address),
            host_header=parsed.netloc.decode("ascii"),
        )
        if len(self._routes) >= MAX_POOLS * 4:
            self._routes.clear()
        self._routes[url] = route
        return route

    async def attempt(self, claim: Claim, secret: str | None) -> AttemptResult:
        """Make one attempt; never raises for what the network or the endpoint did."""
        started_at = self.clock.now()
        start = time.perf_counter()
        body = claim.body.encode()
        headers = delivery_headers(claim, body, secret)
        address: str | None = None

        def result(
            status: int | None,
            error: str | None,
            excerpt: str | None = None,
            response_headers: httpx.Headers | None = None,
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

        extensions = None
        try:
            if self.options.egress_proxy:
                client = await self._client(None)
                url: httpx.URL | str = claim.url
            else:
                route = await self._route(claim.url)
                client = await self._client(route.key)
                url, address = route.pinned, route.key[1]
                headers["Host"] = route.host_header
                if route.key[3] is not None:
                    extensions = {"sni_hostname": route.key[3]}
        except UnsafeURLError as exc:
            return result(None, f"target refused before sending: {exc.detail}")
        request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=self.timeout, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                chunks: list[bytes] = []
                size = 0
                if response.is_stream_consumed:  # built in memory (a MockTransport seam)
                    chunks.append(response.content[: self.options.max_response_bytes])
                else:
                    async for chunk in response.aiter_raw():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size >= self.options.max_response_bytes:
                            break
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            return result(None, f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return result(None, f"{type(exc).__name__}: {str(exc) or 'connection failed'}")
        raw = b"".join(chunks)[: self.options.response_excerpt_bytes]
        excerpt = raw.decode("utf-8", errors="replace") if raw else None
        error = None if response.is_success else f"HTTP {response.status_code}"
        return result(response.status_code, error, excerpt, response.headers)
