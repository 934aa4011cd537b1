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


_made = itertools.count()


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        if not n:
            return digits


@contextmanager
def lan(count: int) -> Iterator[Lan]:
    """`count` hosts on one switch. Every name (namespaces, and links, which start in the
    host's own namespace) holds this process's pid and a count of the LANs it made, so
    test processes side by side (pytest-xdist workers, other runs) never share one; an
    interface name must stay within 15 characters."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
    if not 1 <= count <= 99:
        raise ValueError(f"a LAN of 1 to 99 hosts, not {count}")
    tag = f"{_base36(os.getpid())}x{_base36(next(_made))}"
    net = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"  # private to the namespaces
    switch = f"bzsw{tag}"
    made: list[str] = []
    try:
        # A name with our pid in it can only be left over by a dead process (pids are
        # reused): it would make `ip netns add` fail.
        for stale in [switch, *(f"bzh{tag}n{n}" for n in range(1, count + 1))]:
            subprocess.run(["ip", "netns", "del", stale], capture_output=True, timeout=10)
        for n in range(1, count + 1):
            subprocess.run(["ip", "link", "del", f"bz{tag}i{n}"], capture_output=True, timeout=10)
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        hosts = []
        for n in range(1, count + 1):
            ns, inside, outside = f"bzh{tag}n{n}", f"bz{tag}i{n}", f"bz{tag}o{n}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "netns", switch)
            _ip("-n", switch, "link", "set", outside, "master", "br0")
            _ip("-n", switch, "link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{net}.{n}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts.append(Host(ns, f"{net}.{n}", outside))
        yield Lan(switch, hosts)
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
