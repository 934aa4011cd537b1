"""Where members listen: addresses in text form, and the signed announcements that
carry them to every member.

A member announces the addresses it can be reached at in a `mesh.addresses` entry of its
own log (at start, and again when they change), so a node that joined through one seed
learns every member's address from the logs and dials them all: losing the seed leaves
the rest connected. An announcement is only a hint: a dialer checks the host key against
the member's key, so a wrong or stale address costs a failed dial, never a wrong peer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.payload import payload_map

ANNOUNCED = "mesh.addresses"
MAX_ADDRESSES = 8  # per announcement; more interfaces than this are cut, in order
MAX_ADDRESS_CHARS = 270  # a 253-character name, brackets, a colon and a port
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
WILDCARDS = frozenset({"0.0.0.0", "::"})


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets) into its parts; ValueError says what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:7420)")
    if not valid_host(host):
        raise ValueError(f"{text!r}: {host!r} is neither an IP address nor a host name")
    return host, int(port)


def valid_host(host: str) -> bool:
    """An IPv4 or IPv6 address, or a DNS name (a name's last label is never all digits,
    so 999.1.1.1 is a bad address rather than a name)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is fine
        return True
    labels = host.removesuffix(".").split(".")
    return (
        len(host) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def dialable(text: str) -> str | None:
    """Why `text` cannot be dialed as an announced address, or None if it can."""
    if len(text) > MAX_ADDRESS_CHARS:
        return f"longer than {MAX_ADDRESS_CHARS} characters"
    try:
        host, port = parse_address(text)
    except ValueError as error:
        return str(error)
    if port == 0:
        return f"{text!r}: port 0 is not a port one can dial"
    if host in WILDCARDS:
        return f"{text!r}: {host} means every interface, not an address one can dial"
    return None


def to_announce(
    listen: str, bound_port: int, advertise: Sequence[str], interfaces: Iterable[str]
) -> tuple[str, ...]:
    """The addresses this node announces: `advertise` when set (the operator knows best,
    e.g. behind NAT); else the host it listens on; else, listening on every interface,
    each interface's address (loopback and IPv6 link-local ones only if there is nothing
    else: they mean this machine, or this link, to whoever dials them)."""
    if advertise:
        return tuple(dict.fromkeys(advertise))[:MAX_ADDRESSES]
    host, _ = parse_address(listen)
    if host not in WILDCARDS:
        return (format_address(host, bound_port),)
    ips = [ip for ip in dict.fromkeys(interfaces) if _ip(ip) is not None]
    wide = [ip for ip in ips if not _local(ip)]
    return tuple(format_address(ip, bound_port) for ip in (wide or ips))[:MAX_ADDRESSES]


def _local(host: str) -> bool:
    ip = _ip(host)
    return ip is not None and (ip.is_loopback or ip.is_link_local)


def announced_body(addresses: Sequence[str]) -> dict[str, Any]:
    return {"at": list(addresses)}


def announced_addresses(body: bytes) -> tuple[str, ...] | None:
    """The addresses an announcement gives, or None when it is malformed (a peer's
    entry: it is ignored, as every rule over hostile bodies ignores them)."""
    data = payload_map(body)
    if data is None:
        return None
    at = data.get("at")
    if not isinstance(at, list) or len(at) > MAX_ADDRESSES:
        return None
    if not all(isinstance(a, str) and dialable(a) is None for a in at):
        return None
    return tuple(at)


@dataclass
class Directory:
    """Each member's latest announcement (by its log's sequence number)."""

    _by_member: dict[bytes, tuple[int, tuple[str, ...]]] = field(default_factory=dict)

    def note(self, author: bytes, seq: int, body: bytes) -> bool:
        """Take an announcement into account; True when it changes what `author` is
        known to listen at."""
        known = self._by_member.get(author)
        if known is not None and known[0] >= seq:
            return False
        addresses = announced_addresses(body)
        if addresses is None:
            return False
        self._by_member[author] = (seq, addresses)
        return known is None or known[1] != addresses

    def of(self, member: bytes) -> tuple[str, ...]:
        known = self._by_member.get(member)
        return known[1] if known is not None else ()

    def members(self) -> dict[bytes, tuple[str, ...]]:
        return {member: addresses for member, (_, addresses) in self._by_member.items()}
