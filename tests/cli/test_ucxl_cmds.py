"""`bzzz ucxl` and `bzzz decide` on a real home (the agent need not run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import assert_one_line_error, bzzz, make_home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home for the module (each `bzzz` run costs a process start): tests write
    to paths of their own."""
    where = tmp_path_factory.mktemp("ucxl") / "node"
    return make_home(where, "--new-cluster", "Acme Team", "--listen", "127.0.0.1:0")


_ids: dict[Path, str] = {}


def me(home: Path) -> str:
    if home not in _ids:
        _ids[home] = str(json.loads(bzzz("id", "--home", str(home), "--json").out)["agent_id"])
    return _ids[home]


def address(home: Path, path: str, role: str = "admin", temporal: str = "~latest") -> str:
    return f"ucxl://{me(home)[:12]}:{role}@acme-team:local:fix-login/{temporal}/{path}"


def ok(*args: str) -> str:
    result = bzzz(*args)
    assert result.code == 0, result
    return result.out


def test_put_get_history_and_search(home: Path) -> None:
    where = ("--home", str(home))
    for text in ("first draft", "second draft", "[bold]third[/bold] draft"):
        ok("ucxl", "put", address(home, "notes.md"), "--text", text, *where)
    got = json.loads(ok("ucxl", "get", address(home, "notes.md"), "--json", *where))
    assert got["text"] == "[bold]third[/bold] draft" and got["version"] == got["versions"] == 3
    assert got["address"].endswith("/~v3/notes.md") and got["kind"] == "context.put"
    assert "[bold]third[/bold]" in ok("ucxl", "get", address(home, "notes.md"), *where)  # no markup
    back = json.loads(
        ok("ucxl", "get", address(home, "notes.md", temporal="~-2"), "--json", *where)
    )
    assert back["text"] == "first draft"
    history = json.loads(ok("ucxl", "history", address(home, "notes.md"), "--json", *where))
    assert [v["text"] for v in history["versions"]] == [
        "first draft",
        "second draft",
        "[bold]third[/bold] draft",
    ]
    ok("ucxl", "put", address(home, "docs/a.md"), "--text", "a", *where)
    found = json.loads(
        ok("ucxl", "search", "ucxl://*:*@acme-team:*/~latest/docs", "--json", *where)
    )
    assert [f["text"] for f in found["found"]] == ["a"]
    assert "nothing matches" in ok("ucxl", "search", "ucxl://*:*@other:*/~latest", *where)


def test_a_decision_lives_under_decisions(home: Path, tmp_path: Path) -> None:
    # The founder is admin (master authority): it may decide; a role below `decision`
    # may not (the fold's rule, tests/domain/test_context.py).
    text = tmp_path / "decision.md"
    text.write_text("We use signed tokens.\n")
    where = ("--home", str(home))
    wrote = json.loads(
        ok("decide", "--address", address(home, "auth.md"), "--file", str(text), "--json", *where)
    )
    assert wrote["address"].endswith("/~v1/decisions/auth.md") and wrote["kind"] == "decision.made"
    got = json.loads(ok("ucxl", "get", address(home, "decisions/auth.md"), "--json", *where))
    assert got["text"] == "We use signed tokens.\n"


def test_hmmm_messages_are_context_too(home: Path) -> None:
    where = ("--home", str(home))
    body = json.dumps(
        {"thread": "local:fix-login", "query_type": "clarification_needed", "text": "which login?"}
    )
    ok("log", "append", "--kind", "hmmm.msg", "--data", body, *where)
    got = json.loads(ok("ucxl", "get", address(home, "discussion"), "--json", *where))
    assert got["text"] == "which login?" and got["kind"] == "hmmm.msg"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["get", "ucxl://zz:admin@acme-team:t/~latest/x"], ["ADDRESS", "position"]),
        (["get", "ucxl://*:admin@acme-team:t/~latest/x"], ["search"]),
        (["history", "ucxl://abcd:admin@acme-team:t/~latest/x"], ["nothing at"]),
        (["get", "ucxl://abcd:admin@acme-team:t/~v9/x"], ["nothing at"]),
        (["search", "http://x"], ["PATTERN"]),
        (["put", "ucxl://abcd:admin@acme-team:t/~latest/x", "--text", "x"], ["your own context"]),
    ],
)
def test_bad_addresses_are_one_line_errors(home: Path, args: list[str], words: list[str]) -> None:
    assert_one_line_error(bzzz("ucxl", *args, "--home", str(home)), *words)


def test_writes_that_are_not_yours_or_not_whole_are_refused(home: Path) -> None:
    where = ("--home", str(home))
    cases = [
        (
            ["ucxl", "put", address(home, "x", role="developer"), "--text", "x"],
            "your role is admin",
        ),
        (
            ["ucxl", "put", address(home, "x").replace("acme-team", "other"), "--text", "x"],
            "project is acme-team",
        ),
        (["ucxl", "put", address(home, "x", temporal="~v2"), "--text", "x"], "~latest"),
        (["ucxl", "put", address(home, "x"), "--text", "  "], "empty"),
        (["ucxl", "put", address(home, "x")], "--text"),
        (["ucxl", "put", address(home, "x"), "--text", "x" * 60_001], "at most 60000"),
        (["ucxl", "put", address(home, "x"), "--file", "/nonexistent"], "cannot read"),
        (["ucxl", "put", address(home, "x").rsplit("/", 1)[0], "--text", "x"], "needs a path"),
    ]
    for args, words in cases:
        assert_one_line_error(bzzz(*args, *where), words)
    pattern = f"ucxl://{me(home)}:*@*:*/~latest/x"
    assert "nothing matches" in ok("ucxl", "search", pattern, *where)  # nothing was written
