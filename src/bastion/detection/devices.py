"""What "the same device" means for an API without cookies: the same user-agent family (browser
or client name and OS, no version, so updates do not alert) from the same network (/24 for IPv4,
/48 for IPv6, so a DHCP renewal does not alert either). Stored only as a keyed MAC."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Final, Protocol

DEVICE_PURPOSE: Final = "detection.device"
IPV4_PREFIX: Final = 24
IPV6_PREFIX: Final = 48
MAX_FAMILY_CHARS: Final = 40

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS: Final = (
    ("Edg/", "edge"),
    ("OPR/", "opera"),
    ("Firefox/", "firefox"),
    ("Chrome/", "chrome"),
    ("Safari/", "safari"),
)
_SYSTEMS: Final = (
    ("Android", "android"),
    ("iPhone", "ios"),
    ("iPad", "ios"),
    ("Windows", "windows"),
    ("Mac OS X", "macos"),
    ("Linux", "linux"),
)
_PRODUCT: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


class Mac(Protocol):
    def system_mac(self, purpose: str, message: bytes) -> bytes: ...


def user_agent_family(user_agent: str | None) -> str:
    """``chrome/windows``, ``firefox/linux``, or the product name of a non-browser client
    (``python-httpx``, ``curl``); ``unknown`` without a User-Agent."""
    if not user_agent:
        return "unknown"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    if browser is not None:
        system = next((name for token, name in _SYSTEMS if token in user_agent), "other")
        return f"{browser}/{system}"
    product = _PRODUCT.match(user_agent.strip())
    return product.group(0).lower()[:MAX_FAMILY_CHARS] if product else "other"


def _address(ip: str) -> IPv4Address | IPv6Address:
    """``ip`` parsed; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, how a dual-stack listener
    reports every IPv4 client) is the IPv4 address it carries, or all IPv4 clients would share
    one ``::/64``: one attacker's block would shut every IPv4 client out. ValueError if bad."""
    address = ip_address(ip)
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def network_of(ip: str | None) -> str:
    """The client's /24 (IPv4) or /48 (IPv6) network, or ``unknown``."""
    if not ip:
        return "unknown"
    try:
        address = _address(ip)
    except ValueError:
        return "unknown"
    prefix = IPV4_PREFIX if isinstance(address, IPv4Address) else IPV6_PREFIX
    return str(ip_network(f"{address}/{prefix}", strict=False))


def source_of(ip: str) -> str:
    """What a block applies to: the address itself for IPv4, its /64 for IPv6 (one subscriber
    usually holds a whole /64, so blocking a single IPv6 address blocks nothing)."""
    try:
        address = _address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, IPv4Address):
        return str(address)
    return str(ip_network(f"{address}/64", strict=False))


def fingerprint(keys: Mac, *, user_id: str, user_agent: str | None, ip: str | None) -> bytes:
    """The keyed MAC of (user, family, network): equal inputs give equal fingerprints, and the
    table holding them reveals neither the network nor the client to a database reader."""
    message = "\x1f".join((user_id, user_agent_family(user_agent), network_of(ip)))
    return keys.system_mac(DEVICE_PURPOSE, message.encode("utf-8"))
