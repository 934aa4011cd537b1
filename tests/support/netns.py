"""Test hosts in network namespaces this test run makes (and removes): each host gets a
veth pair whose other end sits on a bridge in a namespace of its own, like a LAN switch.
A host is cut off by taking its switch port down; two hosts are cut from each other by
routing each one's address into a blackhole on the other."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class Host:
    ns: str
    address: str
    port_link: str  # its end on the switch

    @property
    def wrap(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    @property
    def link(self) -> str:
        """Its end of the veth, inside its namespace (the switch's end with o -> i)."""
        head, _, number = self.port_link.rpartition("o")
        return f"{head}i{number}"


@dataclass(frozen=True)
class Lan:
    switch: str
    hosts: list[Host]

    def cut(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", host.port_link, "down")

    def heal(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", host.port_link, "up")

    def cut_between(self, a: Host, b: Host) -> None:
        _ip("-n", a.ns, "route", "add", "blackhole", f"{b.address}/32")
        _ip("-n", b.ns, "route", "add", "blackhole", f"{a.address}/32")

    def heal_between(self, a: Host, b: Host) -> None:
        _ip("-n", a.ns, "route", "del", "blackhole", f"{b.address}/32")
        _ip("-n", b.ns, "route", "del", "blackhole", f"{a.address}/32")

    # One way, and slow links (the nemesis uses these)

    def block(self, a: Host, b: Host) -> None:
        """What `a` sends to `b` is dropped; what `b` sends to `a` still arrives."""
        _ip("-n", a.ns, "route", "add", "blackhole", f"{b.address}/32")

    def unblock(self, a: Host, b: Host) -> None:
        _ip("-n", a.ns, "route", "del", "blackhole", f"{b.address}/32")

    def slow(self, host: Host, rate_kbit: int, latency_ms: int = 400) -> None:
        """Limit the host's link to `rate_kbit` each way (a token bucket: packets
        beyond `latency_ms` of queue are dropped)."""
        burst = max(rate_kbit // 8, 2)  # kbytes: what the bucket holds
        shape = ["rate", f"{rate_kbit}kbit", "burst", f"{burst}kb", "latency", f"{latency_ms}ms"]
        _tc(host.ns, "qdisc", "replace", "dev", host.link, "root", "tbf", *shape)
        _tc(self.switch, "qdisc", "replace", "dev", host.port_link, "root", "tbf", *shape)

    def unslow(self, host: Host) -> None:
        for ns, link in ((host.ns, host.link), (self.switch, host.port_link)):
            subprocess.run(
                ["tc", "-n", ns, "qdisc", "del", "dev", link, "root"],
                capture_output=True,
                timeout=10,
            )


def _tc(ns: str, *args: str) -> None:
    subprocess.run(["tc", "-n", ns, *args], check=True, capture_output=True, timeout=10)


def qdisc_problem(kind: str, *options: str) -> str | None:
    """Why the kernel here cannot put a `kind` qdisc on a link (tried on a veth in a
    namespace made for the purpose), or None when it can."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs root, iproute2 and tc"
    ns, tag = f"bzq{_tag()}", _tag()
    inside, outside = f"bzq{tag}a", f"bzq{tag}b"
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", ns)
        result = subprocess.run(
            ["tc", "-n", ns, "qdisc", "add", "dev", inside, "root", kind, *options],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if result.returncode != 0:
            return f"tc qdisc add ... {kind} failed: {result.stderr.strip() or result.returncode}"
        return None
    except subprocess.CalledProcessError as error:
        return f"could not make a test link: {error.stderr.decode(errors='replace').strip()}"
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


_made = itertools.count()


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        if not n:
            return digits


def _tag() -> str:
    return f"{_base36(os.getpid())}x{_base36(next(_made))}"


def _net(index: int) -> str:
    """A /24 private to the namespaces, per test process (and per LAN within it)."""
    return f"10.{200 + (os.getpid() + index * 17) % 50}.{os.getpid() % 250}"


class _Builder:
    """Makes switches and hosts, and removes all it made (namespaces take their links
    with them). Names hold this process's pid and a count of the builders it made, so
    test processes side by side (pytest-xdist workers, other runs) never share one; an
    interface name must stay within 15 characters."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            pytest.skip("needs root and iproute2 to make network namespaces")
        self.tag = _tag()
        self.made: list[str] = []
        self._links = itertools.count(1)

    def namespace(self, name: str) -> str:
        ns = f"bz{name}{self.tag}"
        # A name with our pid in it can only be left over by a dead process (pids are
        # reused): it would make `ip netns add` fail.
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def switch(self, name: str) -> str:
        switch = self.namespace(name)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        return switch

    def plug(self, ns: str, switch: str, address: str) -> str:
        """A veth from host `ns` (holding `address`/24) to the switch; returns the
        switch's end."""
        n = next(self._links)
        inside, outside = f"bz{self.tag}i{n}", f"bz{self.tag}o{n}"
        subprocess.run(["ip", "link", "del", inside], capture_output=True, timeout=10)
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "netns", switch)
        _ip("-n", switch, "link", "set", outside, "master", "br0")
        _ip("-n", switch, "link", "set", outside, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        return outside

    def lan(self, index: int, count: int, first: int = 1) -> Lan:
        switch = self.switch(f"sw{index}")
        hosts = []
        for n in range(first, first + count):
            ns = self.namespace(f"h{index}n{n}")
            address = f"{_net(index)}.{n}"
            hosts.append(Host(ns, address, self.plug(ns, switch, address)))
        return Lan(switch, hosts)

    def remove(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@contextmanager
def lan(count: int) -> Iterator[Lan]:
    """`count` hosts on one switch."""
    if not 1 <= count <= 99:
        raise ValueError(f"a LAN of 1 to 99 hosts, not {count}")
    build = _Builder()
    try:
        yield build.lan(0, count)
    finally:
        build.remove()


@dataclass(frozen=True)
class TwoLans:
    """Two LANs that only `middle` is on (it does not route between them)."""

    left: Lan
    right: Lan
    middle: Host  # its address on the left LAN
    middle_right: str  # its address on the right one


@contextmanager
def two_lans(left: int, right: int) -> Iterator[TwoLans]:
    """`left` hosts on one switch, `right` on another, and a host plugged into both."""
    build = _Builder()
    try:
        west, east = build.lan(1, left, first=2), build.lan(2, right, first=2)
        ns = build.namespace("mid")
        west_address, east_address = f"{_net(1)}.1", f"{_net(2)}.1"
        port = build.plug(ns, west.switch, west_address)
        build.plug(ns, east.switch, east_address)
        yield TwoLans(west, east, Host(ns, west_address, port), east_address)
    finally:
        build.remove()
