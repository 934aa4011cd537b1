"""Membership operations through the command line: the cluster always keeps a member
who can admit and remove others, and a node removing itself must say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bzzz.errors import UsageError
from bzzz.home.keys import load_identity
from bzzz.services.members import parse_duration
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


def test_an_invite_lasts_at_most_thirty_days() -> None:
    assert parse_duration("30d") == 30 * 86_400_000 and parse_duration(" 90S ") == 90_000
    for text in ("99999999d", "31d", "721h", "0m", "1w", "d", "-5m"):
        with pytest.raises(UsageError, match="--expires"):
            parse_duration(text)
