"""mDNS discovery between two daemons on two hosts: network namespaces joined by a veth
pair, made (and removed) by this test. Each daemon knows no peer address at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.home.config import load_config, write_config
from bzzz.runtime.node import init_node
from tests.agents import Agent, invite_token, stop_all, wait_for

pytestmark = pytest.mark.slow


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _can_make_namespaces() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def two_hosts() -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """Two namespaces with one address each on a shared link: ((ns, addr), (ns, addr))."""
    if not _can_make_namespaces():
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = f"{os.getpid() % 100000}"
    net = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    hosts = ((f"bzzz{tag}a", f"{net}.1"), (f"bzzz{tag}b", f"{net}.2"))
    links = (f"bz{tag}a", f"bz{tag}b")
    try:
        for ns, _ in hosts:
            _ip("netns", "add", ns)
        _ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for (ns, addr), link in zip(hosts, links, strict=True):
            _ip("link", "set", link, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield hosts
    finally:
        for ns, _ in hosts:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_two_daemons_find_each_other_by_mdns(
    tmp_path: Path, two_hosts: tuple[tuple[str, str], tuple[str, str]]
) -> None:
    (ns_a, addr_a), (ns_b, addr_b) = two_hosts
    init_node(
        tmp_path / "a", name="a", role="admin", cluster="lan", listen=f"{addr_a}:7420"
    ).close()
    a = Agent(tmp_path / "a", 7420, host=addr_a, wrap=["ip", "netns", "exec", ns_a], mdns=True)
    b = Agent(tmp_path / "b", 7420, host=addr_b, wrap=["ip", "netns", "exec", ns_b], mdns=True)
    started: list[Agent] = []
    try:
        started.append(a.start())
        joined = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns_b,
                sys.executable,
                "-m",
                "bzzz",
                "join",
                invite_token(a),
                "--home",
                str(b.home),
                "--name",
                "b",
                "--listen",
                b.address,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert joined.returncode == 0, joined.stderr
        config = load_config(b.home)  # forget the inviter's address: only mDNS is left
        write_config(
            b.home, config.model_copy(update={"mesh": config.mesh.model_copy(update={"peers": []})})
        )
        started.append(b.start())
        b_id = b.agent_id
        wait_for(lambda: b_id in a.connected(), timeout=30, what="mDNS discovery")
        seq = a.append(text="found you")
        wait_for(lambda: b.heads().get(a.agent_id) == seq, what="replication over the link")
        assert "mDNS: found" in a.log_text() + b.log_text()
    finally:
        stop_all(started)
