"""The command line, through its real entry point: outputs, JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bzzz.cli.app import main
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.support import tamper


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out)  # type: ignore[no-any-return]

    def lines(self) -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def bzzz(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("BZZZ_HOME", raising=False)

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["bzzz", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def home(bzzz, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    where = tmp_path / "node"
    assert bzzz("init", "--home", str(where), "--name", "alpha").code == 0
    return where


def test_init_creates_keys_with_private_modes_and_refuses_to_overwrite(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("agent.key", "age.key"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    before = (home / "agent.key").read_bytes()
    again = bzzz("init", "--home", str(home))
    assert again.code == 2 and "refusing to overwrite" in again.err
    assert (home / "agent.key").read_bytes() == before


def test_id_json_is_the_stable_interface(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    info = bzzz("id", "--home", str(home), "--json").json()
    assert len(info["agent_id"]) == 64
    assert info["public_key"].startswith("ssh-ed25519 ")
    assert info["age_recipient"].startswith("age1")


def test_bzzz_home_is_honoured(bzzz, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BZZZ_HOME", str(home))
    assert bzzz("id", "--json").json()["name"] == "alpha"


def test_append_show_filters_and_json_lines(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    assert bzzz("log", "append", *h, "--kind", "task.created", "--data", '{"title": "x"}').code == 0
    for i in range(3):
        assert bzzz("log", "append", *h, "-k", "task.note", "-d", json.dumps({"i": i})).code == 0
    shown = bzzz("log", "show", *h, "--json").lines()
    assert [e["seq"] for e in shown] == [1, 2, 3, 4]
    assert set(shown[0]) == {"author", "seq", "hash", "prev", "lamport", "ts", "kind", "data"}
    assert shown[0]["data"] == {"title": "x"} and shown[1]["prev"] == shown[0]["hash"]
    assert [
        e["data"]["i"] for e in bzzz("log", "show", *h, "--kind", "task.note", "--json").lines()
    ] == [0, 1, 2]
    assert [e["seq"] for e in bzzz("log", "show", *h, "--limit", "2", "--json").lines()] == [3, 4]
    prefix = shown[0]["author"][:8]
    assert len(bzzz("log", "show", *h, "--author", prefix, "--json").lines()) == 4
    text = bzzz("log", "show", *h)
    assert "task.created" in text.out and '{"title":"x"}' in text.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("log", "append", "--kind", "task.note", "--data", "{nope"), "--data is not valid JSON"),
        (("log", "append", "--kind", "task.note", "--data", "[1]"), "must be a map"),
        (("log", "append", "--kind", "Bad", "--data", "{}"), "--kind"),
        (("log", "show", "--author", "ffffffff"), "no log here by an author"),
        (("log", "show", "--author", "zz"), "agent id"),
        (("log", "import", "/nonexistent.bundle"), "no such bundle"),
        (("audit", "--bundle", "/nonexistent.bundle"), "no such bundle"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    bzzz, home: Path, args: tuple[str, ...], message: str
) -> None:  # type: ignore[no-untyped-def]
    before = (home / "store.db").read_bytes()
    result = bzzz(*args, "--home", str(home)) if args[0] != "audit" else bzzz(*args)
    assert result.code == 2, result
    assert message in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert (home / "store.db").read_bytes() == before


def test_a_missing_home_is_a_clear_error(bzzz, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = bzzz("log", "show", "--home", str(tmp_path / "nowhere"))
    assert result.code == 2 and "no node home" in result.err and "bzzz init" in result.err


def test_an_invalid_config_names_the_key(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    config = home / "config.yaml"
    config.write_text(config.read_text().replace("level: info", "level: loud"))
    result = bzzz("log", "show", "--home", str(home))
    assert result.code == 2 and "log.level" in result.err
    config.write_text(
        config.read_text().replace("level: loud", "level: info").replace("store:", "stor:")
    )
    assert "stor: unknown key" in bzzz("id", "--home", str(home)).err


def test_export_import_round_trip_and_refusals(bzzz, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    for i in range(5):
        bzzz("log", "append", *h, "-k", "task.note", "-d", json.dumps({"i": i}))
    bundle = tmp_path / "out.bundle"
    assert bzzz("log", "export", str(bundle), *h, "--json").json()["entries"] == 5
    other = tmp_path / "other"
    bzzz("init", "--home", str(other), "--name", "beta")
    imported = bzzz("log", "import", str(bundle), "--home", str(other), "--json")
    assert imported.code == 0 and imported.json()["accepted"] == 5
    again = bzzz("log", "import", str(bundle), "--home", str(other), "--json")
    assert again.json()["duplicates"] == 5
    damaged = bytearray(bundle.read_bytes())
    damaged[-1] ^= 1  # last entry's signature
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(bytes(damaged))
    third = tmp_path / "third"
    bzzz("init", "--home", str(third), "--name", "gamma")
    result = bzzz("log", "import", str(bad), "--home", str(third), "--json")
    assert result.code == 1
    assert [(r["seq"], r["code"]) for r in result.json()["refused"]] == [(5, "bad-signature")]
    assert result.json()["accepted"] == 4


def test_a_truncated_bundle_changes_nothing(bzzz, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    bzzz("log", "append", *h, "-k", "task.note")
    bundle = tmp_path / "out.bundle"
    bzzz("log", "export", str(bundle), *h)
    bundle.write_bytes(bundle.read_bytes()[:-3])
    other = tmp_path / "other"
    bzzz("init", "--home", str(other))
    result = bzzz("log", "import", str(bundle), "--home", str(other))
    assert result.code == 2 and "truncated" in result.err
    assert bzzz("log", "show", "--home", str(other), "--json").out == ""


def test_audit_exit_codes_and_json(bzzz, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    for _ in range(6):
        bzzz("log", "append", *h, "-k", "task.note")
    clean = bzzz("audit", *h, "--json")
    assert clean.code == 0
    assert {k: clean.json()[k] for k in ("ok", "logs", "entries", "findings")} == {
        "ok": True,
        "logs": 1,
        "entries": 6,
        "findings": [],
    }
    assert bzzz("audit", *h, "--full").code == 0
    bundle = tmp_path / "ref.bundle"
    bzzz("log", "export", str(bundle), *h)
    author = bytes.fromhex(bzzz("id", *h, "--json").json()["agent_id"])
    with EventStore(resolve_store_url(f"sqlite:///{home / 'store.db'}")) as store:
        tamper.flip_byte(store, author, 3, index=-10)
    found = bzzz("audit", *h, "--json")
    assert found.code == 1
    assert [(f["author"], f["seq"], f["code"]) for f in found.json()["findings"]] == [
        (author.hex(), 3, "bad-signature")
    ]
    assert set(found.json()["findings"][0]) >= {"author", "seq", "problem"}
    assert bzzz("audit", "--bundle", str(bundle)).code == 0
    store_url = f"sqlite:///{home / 'store.db'}"
    assert bzzz("audit", "--store", store_url, "--against", str(bundle)).code == 1
    assert bzzz("audit", "--store", store_url, "--bundle", str(bundle)).code == 2


def test_audit_of_garbage_is_a_clear_error(bzzz, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(os.urandom(500))
    result = bzzz("audit", "--bundle", str(junk))
    assert result.code == 2 and "not a BZZZ bundle" in result.err
    db = tmp_path / "junk.db"
    db.write_bytes(os.urandom(5000))
    result = bzzz("audit", "--store", f"sqlite:///{db}")
    assert result.code == 2 and "cannot open store" in result.err


def test_projections_commands(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    for kind in ("task.created", "task.note", "task.note"):
        bzzz("log", "append", *h, "-k", kind)
    authors = bzzz("projections", "authors", *h, "--json").json()["authors"]
    assert authors[0]["kinds"] == {"task.created": 1, "task.note": 2}
    assert bzzz("projections", "status", *h, "--json").json()["projections"][0]["behind"] == 0
    assert bzzz("projections", "rebuild", *h, "--json").json() == {"rebuilt": {"authors": 3}}
    assert bzzz("projections", "authors", *h, "--json").json()["authors"] == authors
    assert bzzz("projections", "rebuild", "nope", *h).code == 2


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bzzz", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_follow_prints_new_entries_as_they_arrive(home: Path) -> None:
    follower = _spawn("log", "show", "--follow", "--json", "--home", str(home))
    try:
        time.sleep(1.5)
        for i in range(3):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bzzz",
                    "log",
                    "append",
                    "--home",
                    str(home),
                    "-k",
                    "task.note",
                    "-d",
                    json.dumps({"i": i}),
                ],
                check=True,
                capture_output=True,
            )
        seen: list[dict] = []  # type: ignore[type-arg]
        assert follower.stdout is not None
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            line = follower.stdout.readline()
            if line:
                seen.append(json.loads(line))
        assert [e["data"]["i"] for e in seen] == [0, 1, 2]
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 130


def test_the_console_script_runs_and_usage_errors_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bzzz", "log", "show", "--limit", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    help_ = subprocess.run([sys.executable, "-m", "bzzz", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "audit" in help_.stdout


def test_append_batch_is_validated_whole_then_atomic(bzzz, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ("--home", str(home))
    good = tmp_path / "good.jsonl"
    good.write_text(
        "\n".join(json.dumps({"kind": "task.note", "data": {"i": i}}) for i in range(30))
    )
    assert bzzz("log", "append", *h, "--batch", str(good)).code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '\n{"kind": "Bad", "data": {}}\n')
    result = bzzz("log", "append", *h, "--batch", str(bad))
    assert result.code == 2 and "line 31" in result.err
    assert len(bzzz("log", "show", *h, "--json").lines()) == 30
    assert bzzz("log", "append", *h).code == 2


def test_a_damaged_store_is_one_clear_line_pointing_at_audit(bzzz, home: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    h = ("--home", str(home))
    bzzz("log", "append", *h, "-k", "task.note")
    conn = sqlite3.connect(home / "store.db")
    conn.execute("UPDATE bzzz_heads SET seq = 'zz'")
    conn.execute("UPDATE bzzz_entries SET originator_version = 'x'")
    conn.commit()
    conn.close()
    for args in (
        ("log", "show"),
        ("log", "append", "-k", "task.note"),
        ("log", "export", "/tmp/x"),
    ):
        result = bzzz(*args, *h)
        assert result.code == 2 and "damaged" in result.err and "bzzz audit" in result.err
        assert "Traceback" not in result.err
    assert bzzz("audit", *h).code == 1


@pytest.mark.postgres
def test_a_node_on_postgres_end_to_end(bzzz, tmp_path: Path, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    where = tmp_path / "pg-node"
    assert bzzz("init", "--home", str(where), "--store-url", postgres_url).code == 0
    h = ("--home", str(where))
    for i in range(4):
        assert bzzz("log", "append", *h, "-k", "task.note", "-d", json.dumps({"i": i})).code == 0
    assert [e["seq"] for e in bzzz("log", "show", *h, "--json").lines()] == [1, 2, 3, 4]
    store_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    audited = bzzz("audit", "--store", store_url, "--full", "--json")
    assert audited.code == 0 and audited.json()["entries"] == 4
    assert bzzz("audit", *h, "--against", str(where)).code == 0


def test_init_with_an_unreachable_store_leaves_no_home(bzzz, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where = tmp_path / "never"
    result = bzzz("init", "--home", str(where), "--store-url", "postgresql://nobody@127.0.0.1:1/x")
    assert result.code == 2 and "cannot open store" in result.err
    assert not where.exists()
