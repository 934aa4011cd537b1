"""Membership operations through the command line: the cluster always keeps a member
who can admit and remove others, and a node removing itself must say so."""

from __future__ import annotations

import json
from pathlib import Path

from bzzz.home.keys import load_identity
from tests.support.agents import found, join, stop_all
from tests.support.cli import bzzz


def test_the_last_administrator_cannot_leave_or_be_demoted(tmp_path: Path) -> None:
    a = found(tmp_path, "a").start()
    try:
        b = join(tmp_path, "b", a)
        home = str(a.home)
        me = load_identity(a.home).public_key.hex()
        other = load_identity(b.home).public_key.hex()
        own = bzzz("member", "remove", me, "--home", home)
        assert own.code == 2 and "add --yes" in own.err, own
        last = bzzz("member", "remove", me, "--home", home, "--yes")
        assert last.code == 2 and "last member who can admit" in last.err, last
        demoted = bzzz("member", "role", me, "developer", "--home", home)
        assert demoted.code == 2 and "last member who can admit" in demoted.err
        assert "Traceback" not in last.err + demoted.err
        assert bzzz("member", "role", other, "admin", "--home", home).code == 0
        assert bzzz("member", "remove", me, "--home", home, "--yes").code == 0
        listed = json.loads(bzzz("member", "list", "--home", home, "--json").out)
        status = {m["agent_id"]: m["status"] for m in listed["members"]}
        assert status == {me: "removed", other: "member"}
    finally:
        stop_all([a])
