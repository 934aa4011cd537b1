"""Membership operations through the command line: the cluster always keeps a member
who can admit and remove others, and a node removing itself must say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bzzz.home.keys import load_identity
from tests.agents import found, join, stop_all


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BZZZ_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_the_last_administrator_cannot_leave_or_be_demoted(tmp_path: Path) -> None:
    a = found(tmp_path, "a").start()
    try:
        b = join(tmp_path, "b", a)
        home = str(a.home)
        me = load_identity(a.home).public_key.hex()
        other = load_identity(b.home).public_key.hex()
        own = _cli("member", "remove", me, "--home", home)
        assert own.returncode == 2 and "add --yes" in own.stderr, own
        last = _cli("member", "remove", me, "--home", home, "--yes")
        assert last.returncode == 2 and "last member who can admit" in last.stderr, last
        demoted = _cli("member", "role", me, "developer", "--home", home)
        assert demoted.returncode == 2 and "last member who can admit" in demoted.stderr
        assert "Traceback" not in last.stderr + demoted.stderr
        assert _cli("member", "role", other, "admin", "--home", home).returncode == 0
        assert _cli("member", "remove", me, "--home", home, "--yes").returncode == 0
        listed = json.loads(_cli("member", "list", "--home", home, "--json").stdout)
        status = {m["agent_id"]: m["status"] for m in listed["members"]}
        assert status == {me: "removed", other: "member"}
    finally:
        stop_all([a])
