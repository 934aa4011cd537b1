"""mDNS discovery between two daemons on two hosts (network namespaces on a bridge, made
and removed by the test). Each daemon knows no peer address at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bzzz.home.config import load_config, write_config
from bzzz.home.node import init_node
from tests.support.agents import Agent, invite_token, stop_all, wait_for
from tests.support.netns import Host, lan

pytestmark = pytest.mark.slow


def test_two_daemons_find_each_other_by_mdns(tmp_path: Path) -> None:
    with lan(2) as net:
        _find_each_other(tmp_path, *net.hosts)


def _find_each_other(tmp_path: Path, host_a: Host, host_b: Host) -> None:
    ns_a, addr_a, ns_b, addr_b = host_a.ns, host_a.address, host_b.ns, host_b.address
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
        a.stop()  # and a forgets where b said it would listen when it joined
        a.start()
        started.append(b.start())
        b_id = b.agent_id
        wait_for(lambda: b_id in a.connected(), timeout=30, what="mDNS discovery")
        seq = a.append(text="found you")
        wait_for(lambda: b.heads().get(a.agent_id, 0) >= seq, what="replication over the link")
        assert "mDNS: found" in a.log_text() + b.log_text()
    finally:
        stop_all(started)
