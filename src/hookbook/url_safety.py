"""Is this webhook target safe to call? (SSRF protection.)

Two stages, both pure apart from the injected resolver:

1. :func:`check_url_syntax` (at registration and on a URL change, HTTP 422;
   again in :func:`check_target`): scheme
   http/https (https only unless ``allow_http``), a host, no
   ``user:password@``, at most ``max_length`` characters. The URL is
   normalised as WHATWG URL parsers do (pydantic's ``AnyHttpUrl``, which
   Tiled uses too): lower-case scheme and host, IDNA host, numeric IPv4
   spellings as dotted quads (``http://2130706433/`` -> ``http://127.0.0.1/``),
   default port dropped, empty path ``/``.
2. :func:`check_target` (registration -> HTTP 400, and again for every
   connection the sender opens, see :mod:`hookbook.webhooks.sender`):
   resolves the host with the injected :class:`Resolver` and checks *every*
   address. The returned :class:`CheckedTarget` carries those addresses; the
   sender connects to one of them (sending the original host name as ``Host``
   and TLS SNI), so DNS rebinding between the check and the connection has no
   window.

Address rules, in :func:`classify_address` (``None`` = public): loopback,
private (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10), shared
address space 100.64/10, unspecified, 0.0.0.0/8, multicast, reserved,
broadcast, documentation and benchmarking ranges, IETF protocol assignments,
and IPv6 outside global unicast 2000::/3 are refused. IPv6 forms that embed
an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``,
6to4 ``2002::/16``) are judged by the embedded address; the local-use NAT64
prefix ``64:ff9b:1::/48`` and Teredo ``2001::/32`` are refused outright.
``UrlPolicy.blocked_networks`` always apply (to the address and to its
embedded IPv4 address), whatever ``allow_private_addresses`` and
``allow_delivery_hosts`` say: an explicit deny wins. ``allow_private_addresses``
turns off the built-in rules; ``allow_delivery_hosts`` turns them off for the
listed host names only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from hookbook.errors import ConfigurationError, InvalidURLError, UnsafeURLError

__all__ = [
    "DEFAULT_MAX_URL_LENGTH",
    "DEFAULT_RESOLVE_TIMEOUT",
    "CheckedTarget",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "SystemResolver",
    "UrlPolicy",
    "blocked_reason",
    "check_target",
    "check_url_syntax",
    "classify_address",
    "normalize_host",
    "parse_inet_aton",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_URL_LENGTH = 2048
DEFAULT_RESOLVE_TIMEOUT = 5.0

_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


# --- policy --------------------------------------------------------------------


@dataclass(frozen=True)
class UrlPolicy:
    """The ``webhooks.*`` settings that decide which targets may be called.

    Validated on construction (and by :meth:`validate`): a bad entry raises
    :class:`~hookbook.errors.ConfigurationError` naming the setting. Lists
    are accepted and stored as tuples, entries without surrounding
    whitespace; host names are stored lower-case, without a trailing dot.
    """

    allow_http: bool = False
    allow_private_addresses: bool = False
    blocked_networks: tuple[str, ...] = ()
    allow_delivery_hosts: tuple[str, ...] = ()
    max_url_length: int = DEFAULT_MAX_URL_LENGTH

    def __post_init__(self) -> None:
        networks = _string_tuple(self.blocked_networks, "blocked_networks")
        object.__setattr__(self, "blocked_networks", tuple(n.strip() for n in networks))
        hosts = _string_tuple(self.allow_delivery_hosts, "allow_delivery_hosts")
        object.__setattr__(self, "allow_delivery_hosts", tuple(_host_key(h) for h in hosts))
        self.validate()

    def validate(self) -> UrlPolicy:
        """Raise ``ConfigurationError`` naming the first bad setting; return ``self``."""
        for index, entry in enumerate(self.blocked_networks):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigurationError(
                    f"webhooks.blocked_networks[{index}] = {entry!r} is not a valid CIDR network "
                    "(e.g. '10.0.0.0/8' or 'fd00::/8')",
                    setting="webhooks.blocked_networks",
                ) from None
        for index, host in enumerate(self.allow_delivery_hosts):
            if not host:
                raise ConfigurationError(
                    f"webhooks.allow_delivery_hosts[{index}] is empty",
                    setting="webhooks.allow_delivery_hosts",
                )
            if _literal_address(host) is not None:
                raise ConfigurationError(
                    f"webhooks.allow_delivery_hosts[{index}] = {host!r} is an IP address; it "
                    "takes host names (to let an address range through, use "
                    "webhooks.allow_private_addresses)",
                    setting="webhooks.allow_delivery_hosts",
                )
        if (
            isinstance(self.max_url_length, bool)
            or not isinstance(self.max_url_length, int)
            or self.max_url_length < 16
        ):
            raise ConfigurationError(
                f"webhooks.max_url_length must be an integer >= 16, not {self.max_url_length!r}",
                setting="webhooks.max_url_length",
            )
        return self

    def networks(self) -> tuple[IPNetwork, ...]:
        """``blocked_networks`` parsed (host bits allowed: ``10.1.2.3/8`` means ``10.0.0.0/8``)."""
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.blocked_networks)


def _string_tuple(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigurationError(
            f"webhooks.{name} must be a list of strings, not {type(value).__name__}",
            setting=f"webhooks.{name}",
        )
    for index, entry in enumerate(value):
        if not isinstance(entry, str):
            raise ConfigurationError(
                f"webhooks.{name}[{index}] must be a string, not {type(entry).__name__}",
                setting=f"webhooks.{name}",
            )
    return tuple(value)


def _host_key(host: str) -> str:
    """A host name as compared with ``allow_delivery_hosts``: lower-case, no trailing dot."""
    return host.strip().lower().removesuffix(".")


# --- numeric hosts ---------------------------------------------------------------


def _inet_aton_part(part: str) -> int | None:
    lowered = part.lower()
    if lowered.startswith("0x"):
        digits, base, alphabet = lowered[2:], 16, "0123456789abcdef"
        if not digits:
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base, alphabet = part[1:], 8, "01234567"
    else:
        digits, base, alphabet = part, 10, "0123456789"
    if not digits or any(ch not in alphabet for ch in digits):
        return None
    return int(digits, base)


def parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` as ``inet_aton(3)`` would, or ``None`` if it is not numeric.

    ``a.b.c.d``, ``a.b.c`` (c: 16 bits), ``a.b`` (b: 24 bits) and ``a``
    (32 bits); each part decimal, octal (leading ``0``) or hex (``0x``); one
    trailing dot ignored. ``2130706433``, ``0x7f.1``, ``127.1`` and
    ``017700000001`` are all ``127.0.0.1``. Only ASCII digits count.
    """
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *leading, last = [v for v in values if v is not None]
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = 0
    for value in leading:
        number = number << 8 | value
    number = number << (8 * (5 - len(parts))) | last
    return ipaddress.IPv4Address(number)


def _literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells (IPv6 with or without brackets, any inet_aton form)."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if ":" in bare:
        try:
            return ipaddress.IPv6Address(bare)
        except ValueError:
            return None
    return parse_inet_aton(bare)


def normalize_host(host: str) -> str:
    """The canonical spelling of a URL host.

    IP literals become ``str(ip_address)`` (IPv4 dotted quad, IPv6 compressed,
    no brackets); numeric IPv4 spellings are read with ``inet_aton`` rules
    (:func:`parse_inet_aton`). Names are lower-cased without a trailing dot.
    """
    address = _literal_address(host)
    return str(address) if address is not None else _host_key(host)


# --- classification -----------------------------------------------------------------


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in pairs)


# Order matters: the first match gives the reason.
_IPV4_RULES = _nets(
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "'this network' 0.0.0.0/8"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "link-local, cloud metadata service"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)

_IPV6_RULES = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """``(form, v4)`` for IPv6 addresses that stand for an IPv4 address."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def _parse(ip: str | IPAddress) -> IPAddress:
    return ip if not isinstance(ip, str) else ipaddress.ip_address(ip.strip().strip("[]"))


def classify_address(ip: str | IPAddress) -> str | None:
    """Why ``ip`` may not be a webhook target, or ``None`` if it is public.

    IPv4: the first matching special-purpose range (see the module
    docstring). IPv6: IPv4-mapped, NAT64 ``64:ff9b::/96`` and 6to4 addresses
    are judged by their embedded IPv4 address (reason e.g. ``"IPv4-mapped
    127.0.0.1: loopback"``); then the special ranges; then anything outside
    global unicast ``2000::/3`` is ``"reserved"``. A scope id (``%eth0``)
    does not change the answer. Raises ``ValueError`` if ``ip`` is not an
    address.
    """
    address = _parse(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return _first_match(address, _IPV4_RULES)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, v4 = embedded
        reason = _first_match(v4, _IPV4_RULES)
        return None if reason is None else f"{form} {v4}: {reason}"
    reason = _first_match(address, _IPV6_RULES)
    if reason is None and address not in _GLOBAL_UNICAST_V6:
        reason = "reserved (outside global unicast 2000::/3)"
    return reason


def _first_match(address: IPAddress, rules: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for network, reason in rules:
        if address in network:
            return reason
    return None


def blocked_reason(ip: str | IPAddress, networks: Sequence[IPNetwork]) -> str | None:
    """Why ``ip`` (or the IPv4 address it embeds) is in one of ``networks``, else ``None``."""
    address = _parse(ip)
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded[1])
    for candidate in candidates:
        for network in networks:
            if candidate.version == network.version and candidate in network:
                return f"in blocked network {network}"
    return None


# --- URL syntax -----------------------------------------------------------------------


def check_url_syntax(
    url: str, *, allow_http: bool, max_length: int = DEFAULT_MAX_URL_LENGTH
) -> str:
    """Check a webhook URL's form; return it normalised (see the module docstring).

    Raises :class:`~hookbook.errors.InvalidURLError` (HTTP 422) when the URL
    is longer than ``max_length`` characters (before or after
    normalisation), contains whitespace or control characters, has a scheme
    other than http/https (or http while ``allow_http`` is false), has no
    host, has ``user:password@`` (the message never repeats it), has port 0,
    or a host name that is not a valid DNS name.
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"URL must be a string, not {type(url).__name__}")
    url = url.strip()
    if len(url) > max_length:
        raise InvalidURLError(f"URL is {len(url)} characters long; the limit is {max_length}")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidURLError("URL contains whitespace or control characters")
    match = _SCHEME.match(url)
    if match is None:
        raise InvalidURLError("URL has no scheme: write it as 'https://host/path'")
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        shown = "" if "@" in url else f", not {scheme!r}"  # never echo what may be a user name
        raise InvalidURLError(f"URL scheme must be https (or http){shown}")
    if not url[match.end() :].startswith("//"):
        raise InvalidURLError("URL must have the form 'https://host/path'")
    if scheme == "http" and not allow_http:
        raise InvalidURLError(
            "URL must use https: plain http is refused because it would send the payload "
            "and its signature in clear (webhooks.allow_http is false)"
        )
    try:
        split = urlsplit(url)
    except ValueError:  # its messages may quote the netloc, password included
        raise InvalidURLError("URL is not valid: its host part cannot be parsed") from None
    if "@" in split.netloc:
        raise InvalidURLError(
            "URL must not contain a user name or password ('user:password@host'); "
            "use the webhook's secret to authenticate deliveries"
        )
    if not split.netloc or split.netloc.startswith(":"):
        raise InvalidURLError("URL has no host")
    try:
        parsed = _HTTP_URL.validate_python(url)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        detail = (errors[0].get("ctx") or {}).get("error") or errors[0]["msg"]
        raise InvalidURLError(f"URL is not valid: {detail}") from None
    if parsed.username or parsed.password:  # belt and braces: the parser's own view
        raise InvalidURLError("URL must not contain a user name or password")
    host = parsed.host or ""
    if not host:
        raise InvalidURLError("URL has no host")
    if parsed.port == 0:
        raise InvalidURLError("URL port must be between 1 and 65535, not 0")
    if _literal_address(host) is None and not _valid_host_name(host):
        raise InvalidURLError(f"URL host {host[:255]!r} is not a valid host name")
    normalised = str(parsed)
    if len(normalised) > max_length:
        raise InvalidURLError(
            f"URL is {len(normalised)} characters long once normalised; the limit is {max_length}"
        )
    return normalised


def _valid_host_name(host: str) -> bool:
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


# --- resolution and the target check ----------------------------------------------------


class Resolver(Protocol):
    """Resolves a host name to IP address strings, without blocking the event loop."""

    async def __call__(self, host: str, port: int) -> list[str]: ...


@dataclass(frozen=True)
class SystemResolver:
    """The system's resolver through ``loop.getaddrinfo`` (a thread: the loop never blocks).

    Returns the distinct addresses in the resolver's order. Raises
    ``OSError`` (``socket.gaierror``) when the name does not resolve and
    ``TimeoutError`` after ``timeout`` seconds.
    """

    timeout: float = DEFAULT_RESOLVE_TIMEOUT

    async def __call__(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: The default resolver; ``SystemResolver(timeout=...)`` for another timeout.
system_resolver: Resolver = SystemResolver()


@dataclass(frozen=True)
class CheckedTarget:
    """A webhook URL that passed :func:`check_target`.

    ``host`` is the normalised host (``Host`` header and TLS SNI);
    ``addresses`` are the checked addresses, the only ones the sender may
    connect to; ``port`` is explicit or the scheme's default.
    """

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


async def check_target(
    url: str, policy: UrlPolicy, resolver: Resolver = system_resolver
) -> CheckedTarget:
    """Check that ``url`` may be called under ``policy``; return what to connect to.

    Raises :class:`~hookbook.errors.UnsafeURLError` (HTTP 400) with context
    ``host``, ``reason`` and, for a refused address, ``address``:

    - the URL fails :func:`check_url_syntax` (reason ``"invalid-url"``);
    - the host does not resolve, or resolves to nothing (``"unresolvable"``;
      the resolver's ``OSError``/``TimeoutError`` included);
    - an address is in ``policy.blocked_networks`` (``"blocked-network"``);
    - unless ``policy.allow_private_addresses`` or the host is in
      ``policy.allow_delivery_hosts``: an address that is not public
      (``"not-public"``, see :func:`classify_address`).

    IP literals are not resolved. Every address must pass, not just one.
    """
    try:
        normalised = check_url_syntax(
            url, allow_http=policy.allow_http, max_length=policy.max_url_length
        )
    except InvalidURLError as exc:
        raise UnsafeURLError(exc.detail, reason="invalid-url") from None
    parsed = urlsplit(normalised)
    scheme = parsed.scheme
    host = normalize_host(parsed.hostname or "")
    port = parsed.port or (443 if scheme == "https" else 80)
    literal = _literal_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        addresses = await _resolve(resolver, host, port)
    networks = policy.networks()
    exempt = policy.allow_private_addresses or host in policy.allow_delivery_hosts
    for address in addresses:
        reason, code = blocked_reason(address, networks), "blocked-network"
        if reason is not None:
            reason += " (webhooks.blocked_networks)"
        elif not exempt:
            reason, code = classify_address(address), "not-public"
        if reason is None:
            continue
        message = (
            f"URL host {host} is refused: {reason}"
            if literal is not None
            else f"URL host {host} resolves to {address} ({reason}), which is refused"
        )
        raise UnsafeURLError(message, host=host, address=str(address), reason=code)
    return CheckedTarget(
        url=normalised,
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(dict.fromkeys(str(a) for a in addresses)),
    )


async def _resolve(resolver: Resolver, host: str, port: int) -> list[IPAddress]:
    try:
        found = await resolver(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        if isinstance(exc, TimeoutError):
            why = "timed out"
        else:  # a UnicodeError (a host IDNA cannot encode) has no strerror
            why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        raise UnsafeURLError(
            f"URL host {host} does not resolve ({why})", host=host, reason="unresolvable"
        ) from exc
    if not found:
        raise UnsafeURLError(
            f"URL host {host} does not resolve (no addresses)", host=host, reason="unresolvable"
        )
    return [_parse(a) for a in found]
