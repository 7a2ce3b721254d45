"""hookbook.url_safety: URL syntax, address classification and the SSRF target check."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from hookbook.errors import ConfigurationError, UnsafeURLError
from hookbook.url_safety import (
    CheckedTarget,
    SystemResolver,
    UrlPolicy,
    blocked_reason,
    check_target,
    check_url_syntax,
    classify_address,
    normalize_host,
    parse_inet_aton,
    system_resolver,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


class FakeResolver:
    """An injected resolver: a fixed table, recording what it was asked."""

    def __init__(self, table: dict[str, list[str]] | None = None, error: Exception | None = None):
        self.table = table or {}
        self.error = error
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if self.error is not None:
            raise self.error
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


def run_check(url: str, policy: UrlPolicy | None = None, **table: list[str]) -> CheckedTarget:
    resolver = FakeResolver({k.replace("_", "."): v for k, v in table.items()})
    return asyncio.run(check_target(url, policy or UrlPolicy(), resolver))


# --- classify_address -----------------------------------------------------------------

REFUSED = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local, cloud metadata service"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.255", "shared address space (CGNAT)"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "'this network' 0.0.0.0/8"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.0.8", "reserved (IETF protocol assignments)"),
    ("192.0.2.1", "documentation (TEST-NET-1)"),
    ("198.51.100.7", "documentation (TEST-NET-2)"),
    ("203.0.113.9", "documentation (TEST-NET-3)"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.88.99.1", "reserved (6to4 relay anycast)"),
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private (unique local)"),
    ("fd12:3456:789a::1", "private (unique local)"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local (deprecated)"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "reserved (IETF protocol assignments)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("64:ff9b:1::808:808", "local-use NAT64 (64:ff9b:1::/48)"),
    ("100::1", "reserved (outside global unicast 2000::/3)"),
    ("::127.0.0.1", "reserved (outside global unicast 2000::/3)"),  # IPv4-compatible
    ("5f00::1", "reserved (outside global unicast 2000::/3)"),
    ("4000::1", "reserved (outside global unicast 2000::/3)"),
    # IPv6 forms embedding an IPv4 address: judged by it
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
    ("::ffff:7f00:1", "IPv4-mapped 127.0.0.1: loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: link-local, cloud metadata service"),
    ("::ffff:10.1.2.3", "IPv4-mapped 10.1.2.3: private"),
    ("64:ff9b::127.0.0.1", "NAT64 127.0.0.1: loopback"),
    ("64:ff9b::a00:1", "NAT64 10.0.0.1: private"),
    ("2002:7f00:1::", "6to4 127.0.0.1: loopback"),
    ("2002:a9fe:a9fe::1", "6to4 169.254.169.254: link-local, cloud metadata service"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    PUBLIC_V4,
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.0",  # just above
    "169.253.255.255",
    "223.255.255.255",  # just below multicast
    "11.0.0.1",
    PUBLIC_V6,
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",  # mapped public v4
    "64:ff9b::808:808",  # NAT64 of a public v4
    "2002:808:808::1",  # 6to4 of a public v4
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_classify_refused(address, reason):
    assert classify_address(address) == reason
    assert classify_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_classify_public(address):
    assert classify_address(address) is None


@pytest.mark.parametrize("bad", ["", "example.com", "1.2.3.256", "::g"])
def test_classify_rejects_non_addresses(bad):
    with pytest.raises(ValueError):
        classify_address(bad)


def test_blocked_reason_checks_embedded_ipv4_too():
    networks = [ipaddress.ip_network("93.184.0.0/16")]
    assert blocked_reason(PUBLIC_V4, networks) == "in blocked network 93.184.0.0/16"
    assert blocked_reason("::ffff:" + PUBLIC_V4, networks) == "in blocked network 93.184.0.0/16"
    assert blocked_reason("64:ff9b::" + PUBLIC_V4, networks) == "in blocked network 93.184.0.0/16"
    assert blocked_reason("8.8.8.8", networks) is None
    assert blocked_reason(PUBLIC_V6, networks) is None  # other family: no error, no match


# --- numeric host spellings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("3232235777", "192.168.1.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_inet_aton_spellings(spelling, address):
    assert parse_inet_aton(spelling) == ipaddress.IPv4Address(address)
    assert normalize_host(spelling) == address


@pytest.mark.parametrize(
    "not_numeric",
    [
        "1.2.3.256",
        "1.2.65536",
        "1.16777216",
        "4294967296",
        "08.1.1.1",  # 8 is not an octal digit
        "1.2.3.4.5",
        "1..2",
        "",
        "example.com",
        "0xg",
        "١٢٧.0.0.1",  # non-ASCII digits are not numbers
        "1e3",
    ],
)
def test_inet_aton_non_numeric(not_numeric):
    assert parse_inet_aton(not_numeric) is None


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("[::1]", "::1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("Example.COM.", "example.com"),
        ("hooks.example.org", "hooks.example.org"),
    ],
)
def test_normalize_host(host, normal):
    assert normalize_host(host) == normal


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://127.1/hook",
        "https://017700000001/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
    ],
)
def test_numeric_loopback_spellings_are_refused_without_resolving(url):
    resolver = FakeResolver()
    with pytest.raises(UnsafeURLError, match="loopback") as info:
        asyncio.run(check_target(url, UrlPolicy(), resolver))
    assert resolver.calls == []
    assert info.value.context["reason"] == "not-public"


# --- check_url_syntax --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_http", "normalised"),
    [
        ("https://example.com", False, "https://example.com/"),
        ("HTTPS://Example.COM/Hook?x=1", False, "https://example.com/Hook?x=1"),
        ("https://example.com:443/a", False, "https://example.com/a"),
        ("https://example.com:8443/a", False, "https://example.com:8443/a"),
        ("  https://example.com/a  ", False, "https://example.com/a"),
        ("https://bücher.example/", False, "https://xn--bcher-kva.example/"),
        ("https://2130706433/", False, "https://127.0.0.1/"),
        ("https://[::1]:8000/x", False, "https://[::1]:8000/x"),
        ("http://127.0.0.1:8000/hook", True, "http://127.0.0.1:8000/hook"),
        ("http://localhost/hook", True, "http://localhost/hook"),
        ("https://under_score.example/", False, "https://under_score.example/"),
        ("https://example.com/a#frag", False, "https://example.com/a#frag"),
    ],
)
def test_check_url_syntax_accepts_and_normalises(url, allow_http, normalised):
    assert check_url_syntax(url, allow_http=allow_http) == normalised


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("http://example.com/", False, "must use https"),
        ("ftp://example.com/", True, "scheme must be https (or http), not 'ftp'"),
        ("file:///etc/passwd", True, "not 'file'"),
        ("gopher://127.0.0.1:6379/_", True, "not 'gopher'"),
        ("javascript:alert(1)", True, "not 'javascript'"),
        ("example.com/hook", True, "no scheme"),
        ("//example.com/hook", True, "no scheme"),
        ("https:example.com", True, "form 'https://host/path'"),
        ("https:/example.com", True, "form 'https://host/path'"),
        ("https://", True, "no host"),
        ("https:///path", True, "no host"),
        ("https://:443/", True, "no host"),
        ("https://exa mple.com/", True, "whitespace or control characters"),
        ("https://example.com/\nHost: evil", True, "whitespace or control characters"),
        ("https://example.com/a\tb", True, "whitespace or control characters"),
        ("https://example.com/\x00", True, "whitespace or control characters"),
        ("https://example.com:99999/", True, "invalid port number"),
        ("https://example.com:0/", True, "port must be between 1 and 65535"),
        ("https://1.2.3.999/", True, "invalid IPv4 address"),
        ("https://[127.0.0.1]/", True, "host part cannot be parsed"),
        ("https://[::1/", True, "host part cannot be parsed"),
        ("https://ex$ample.com/", True, "not a valid host name"),
        ("https://a..b/", True, "not a valid host name"),
        ("https://-leading.example/", True, "not a valid host name"),
        ("https://" + "a" * 64 + ".example/", True, "not a valid host name"),
        ("https://user@example.com/", True, "user name or password"),
        ("https://@example.com/", True, "user name or password"),
        (12, True, "must be a string"),
    ],
)
def test_check_url_syntax_refuses(url, allow_http, message):
    with pytest.raises(ValueError) as info:
        check_url_syntax(url, allow_http=allow_http)
    assert message in str(info.value)


def test_length_limit_is_stated():
    url = "https://example.com/" + "a" * 2100
    with pytest.raises(ValueError, match=r"is 2120 characters long; the limit is 2048"):
        check_url_syntax(url, allow_http=False)
    assert check_url_syntax(url[:2048], allow_http=False) == url[:2048]
    with pytest.raises(ValueError, match="the limit is 30"):
        check_url_syntax("https://example.com/abcdefghijk", allow_http=False, max_length=30)


def test_length_limit_applies_after_normalisation():
    url = "https://example.com/" + "é" * 20  # each é becomes %C3%A9
    with pytest.raises(ValueError, match="once normalised; the limit is 60"):
        check_url_syntax(url, allow_http=False, max_length=60)


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:hunter2-SECRET@example.com/hook",
        "http://alice:hunter2-SECRET@example.com/hook",  # http refused first, still no echo
        "ftp://alice:hunter2-SECRET@example.com/hook",
        "alice:hunter2-SECRET@example.com",
        "hunter2-SECRET:x@example.com",
        "https://:hunter2-SECRET@example.com/",
        "https://alice:hunter2-SECRET@exa mple.com/",
        "https://alice:hunter2-SECRET@example.com:99999/",
        "https://alice:hunter2-SECRET\u2100@example.com/",  # urlsplit quotes the netloc
        "https://alice:hunter2-SECRET@[127.0.0.1]/",
        "https://alice:hunter2-SECRET@" + "a" * 3000 + ".com/",
    ],
)
@pytest.mark.parametrize("allow_http", [True, False])
def test_password_is_never_echoed(url, allow_http):
    with pytest.raises(ValueError) as info:
        check_url_syntax(url, allow_http=allow_http)
    assert "hunter2" not in str(info.value)
    with pytest.raises(UnsafeURLError) as unsafe:
        asyncio.run(check_target(url, UrlPolicy(allow_http=allow_http), FakeResolver()))
    assert "hunter2" not in f"{unsafe.value} {unsafe.value.to_json()}"


# --- check_target ----------------------------------------------------------------------


def test_public_target_returns_checked_addresses():
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]})
    target = asyncio.run(
        check_target("https://Hooks.Example.com:8443/in?x=1", UrlPolicy(), resolver)
    )
    assert target == CheckedTarget(
        url="https://hooks.example.com:8443/in?x=1",
        scheme="https",
        host="hooks.example.com",
        port=8443,
        addresses=(PUBLIC_V4, PUBLIC_V6),
    )
    assert resolver.calls == [("hooks.example.com", 8443)]


@pytest.mark.parametrize(
    ("url", "policy", "port"),
    [
        ("https://hooks.example.com/", UrlPolicy(), 443),
        ("http://hooks.example.com/", UrlPolicy(allow_http=True), 80),
        ("http://hooks.example.com:8080/", UrlPolicy(allow_http=True), 8080),
    ],
)
def test_default_ports(url, policy, port):
    assert run_check(url, policy, hooks_example_com=[PUBLIC_V4]).port == port


def test_ip_literal_target_is_not_resolved():
    resolver = FakeResolver()
    target = asyncio.run(check_target(f"https://[{PUBLIC_V6}]/", UrlPolicy(), resolver))
    assert target.host == PUBLIC_V6
    assert target.addresses == (PUBLIC_V6,)
    assert resolver.calls == []


def test_message_names_host_address_and_why():
    with pytest.raises(UnsafeURLError) as info:
        run_check("https://internal.example/", internal_example=["127.0.0.1"])
    assert "internal.example resolves to 127.0.0.1 (loopback)" in str(info.value)
    assert info.value.context == {
        "host": "internal.example",
        "address": "127.0.0.1",
        "reason": "not-public",
    }
    assert info.value.status_code == 400


def test_literal_message():
    with pytest.raises(UnsafeURLError, match=r"URL host 169\.254\.169\.254 is refused: link-local"):
        run_check("https://169.254.169.254/latest/meta-data/")


def test_every_address_must_be_public():
    # one public and one private address: refused (a rebinding resolver could pick either)
    with pytest.raises(UnsafeURLError, match=r"resolves to 10\.0\.0\.5 \(private\)"):
        run_check("https://mixed.example/", mixed_example=[PUBLIC_V4, "10.0.0.5"])


def test_mapped_address_from_dns_is_judged_by_its_ipv4():
    with pytest.raises(UnsafeURLError, match=r"IPv4-mapped 127\.0\.0\.1: loopback"):
        run_check("https://sneaky.example/", sneaky_example=["::ffff:127.0.0.1"])


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "not known"),
        (TimeoutError(), "timed out"),
        (OSError("network unreachable"), "network unreachable"),
        # a label IDNA cannot encode: a UnicodeError has no strerror
        (UnicodeError("label too long"), "label too long"),
    ],
)
def test_unresolvable_host(error, why):
    resolver = FakeResolver(error=error)
    with pytest.raises(UnsafeURLError, match=rf"nowhere\.example does not resolve.*{why}") as info:
        asyncio.run(check_target("https://nowhere.example/", UrlPolicy(), resolver))
    assert info.value.context == {"host": "nowhere.example", "reason": "unresolvable"}


def test_host_resolving_to_nothing_does_not_resolve():
    with pytest.raises(UnsafeURLError, match="does not resolve"):
        run_check("https://empty.example/", empty_example=[])


def test_syntax_errors_become_unsafe_url_errors():
    with pytest.raises(UnsafeURLError, match="must use https") as info:
        run_check("http://hooks.example.com/", hooks_example_com=[PUBLIC_V4])
    assert info.value.context == {"reason": "invalid-url"}
    with pytest.raises(UnsafeURLError, match="limit is 40"):
        run_check("https://hooks.example.com/" + "x" * 40, UrlPolicy(max_url_length=40))


def test_allow_private_addresses():
    policy = UrlPolicy(allow_http=True, allow_private_addresses=True)
    target = run_check("http://127.0.0.1:8000/hook", policy)
    assert target.addresses == ("127.0.0.1",)
    assert run_check("http://db.internal/", policy, db_internal=["10.1.2.3"]).addresses == (
        "10.1.2.3",
    )


def test_allow_delivery_hosts_lets_named_hosts_through_only():
    policy = UrlPolicy(allow_delivery_hosts=["Hooks.Internal."])
    assert policy.allow_delivery_hosts == ("hooks.internal",)
    table = {"hooks.internal": ["10.0.0.7"], "other.internal": ["10.0.0.7"]}
    target = asyncio.run(check_target("https://HOOKS.internal/x", policy, FakeResolver(table)))
    assert target.addresses == ("10.0.0.7",)
    with pytest.raises(UnsafeURLError, match="private"):
        asyncio.run(check_target("https://other.internal/x", policy, FakeResolver(table)))
    # naming the host does not let an IP literal of the same address through
    with pytest.raises(UnsafeURLError, match="private"):
        asyncio.run(check_target("https://10.0.0.7/x", policy, FakeResolver(table)))


def test_blocked_networks_refuse_public_addresses():
    policy = UrlPolicy(blocked_networks=("93.184.0.0/16",))
    with pytest.raises(UnsafeURLError, match=r"in blocked network 93\.184\.0\.0/16") as info:
        run_check("https://example.com/", policy, example_com=[PUBLIC_V4])
    assert info.value.context["reason"] == "blocked-network"
    assert "webhooks.blocked_networks" in str(info.value)
    assert run_check("https://example.com/", policy, example_com=["8.8.8.8"]).addresses


@pytest.mark.parametrize(
    "policy",
    [
        UrlPolicy(allow_private_addresses=True, blocked_networks=("10.0.0.0/8",)),
        UrlPolicy(allow_delivery_hosts=("hooks.internal",), blocked_networks=("10.0.0.0/8",)),
    ],
    ids=["allow_private_addresses", "allow_delivery_hosts"],
)
def test_blocked_networks_win_over_relaxations(policy):
    with pytest.raises(UnsafeURLError, match=r"blocked network 10\.0\.0\.0/8"):
        run_check("https://hooks.internal/", policy, hooks_internal=["10.0.0.7"])
    with pytest.raises(UnsafeURLError, match=r"blocked network 10\.0\.0\.0/8"):
        run_check("https://hooks.internal/", policy, hooks_internal=["::ffff:10.0.0.7"])
    assert run_check("https://hooks.internal/", policy, hooks_internal=["192.168.0.7"])


# --- UrlPolicy settings -------------------------------------------------------------------


def test_policy_defaults_are_strict():
    policy = UrlPolicy()
    assert (policy.allow_http, policy.allow_private_addresses) == (False, False)
    assert policy.max_url_length == 2048


def test_policy_accepts_lists_and_parses_networks():
    policy = UrlPolicy(blocked_networks=["10.1.2.3/8", " fd00::/8 "])
    assert policy.blocked_networks == ("10.1.2.3/8", "fd00::/8")
    assert policy.networks() == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert policy.validate() is policy
    hash(policy)  # frozen and hashable


@pytest.mark.parametrize(
    ("kwargs", "setting", "message"),
    [
        ({"blocked_networks": ("10.0.0.0/33",)}, "webhooks.blocked_networks", "not a valid CIDR"),
        ({"blocked_networks": ("ten",)}, "webhooks.blocked_networks", "[0] = 'ten'"),
        ({"blocked_networks": ("10.0.0.0/8", "")}, "webhooks.blocked_networks", "[1]"),
        ({"blocked_networks": "10.0.0.0/8"}, "webhooks.blocked_networks", "must be a list"),
        ({"blocked_networks": (10,)}, "webhooks.blocked_networks", "must be a string"),
        ({"allow_delivery_hosts": ("10.0.0.1",)}, "webhooks.allow_delivery_hosts", "IP address"),
        ({"allow_delivery_hosts": ("[::1]",)}, "webhooks.allow_delivery_hosts", "IP address"),
        ({"allow_delivery_hosts": ("2130706433",)}, "webhooks.allow_delivery_hosts", "IP address"),
        ({"allow_delivery_hosts": ("",)}, "webhooks.allow_delivery_hosts", "is empty"),
        ({"allow_delivery_hosts": "hooks"}, "webhooks.allow_delivery_hosts", "must be a list"),
        ({"max_url_length": 0}, "webhooks.max_url_length", ">= 16"),
        ({"max_url_length": "2048"}, "webhooks.max_url_length", ">= 16"),
    ],
)
def test_bad_settings_name_the_setting(kwargs, setting, message):
    with pytest.raises(ConfigurationError) as info:
        UrlPolicy(**kwargs)
    assert setting in str(info.value)
    assert message in str(info.value)
    assert info.value.context == {"setting": setting}


# --- the system resolver ------------------------------------------------------------------


def test_system_resolver_resolves_localhost_without_blocking():
    addresses = asyncio.run(system_resolver("localhost", 80))
    assert addresses
    assert all(classify_address(a) == "loopback" for a in addresses)


def test_system_resolver_with_localhost_end_to_end():
    with pytest.raises(UnsafeURLError, match=r"localhost resolves to .* \(loopback\)"):
        asyncio.run(check_target("https://localhost/hook", UrlPolicy()))
    relaxed = UrlPolicy(allow_http=True, allow_private_addresses=True)
    target = asyncio.run(check_target("http://localhost:8000/hook", relaxed))
    assert target.host == "localhost"


def test_system_resolver_timeout_is_configurable():
    assert SystemResolver().timeout == 5.0
    assert SystemResolver(timeout=0.5).timeout == 0.5
