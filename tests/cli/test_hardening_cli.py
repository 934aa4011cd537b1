"""Hardening (issue 25): what a person can type gets a one-line answer, never a traceback.

Every test runs the real `bzzz` as a subprocess: argv bytes, stdin, the umask and the
exit code are the process's own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from bzzz.domain.kinds import SERVICE_ONLY_KINDS, service_only
from tests.support.cli import Run, assert_one_line_error, bzzz, make_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "node")


def store_bytes(home: Path) -> bytes:
    return (home / "store.db").read_bytes()


# 1. Kinds only BZZZ's services write ----------------------------------------------------

SERVICE_KINDS = [
    "cluster.founded",
    "member.invited",
    "member.admitted",
    "member.removed",
    "member.role_changed",
    "election.vote",
    "election.leader",
    "key.rotated",
    "alert.fork",
    "alert.peer_refused",
    "alert.split_brain",
    "agent.profile",
    "task.opened",
    "task.closed",
    "task.completed",
    "task.claim_granted",
    "task.claim_refused",
]
HAND_KINDS = ["task.note", "task.progress", "task.sync_requested", "hmmm.message"]


def test_service_only_is_one_pure_rule() -> None:
    assert all(service_only(kind) for kind in SERVICE_KINDS)
    assert not any(service_only(kind) for kind in HAND_KINDS)
    assert not service_only("agent.profiles") and not service_only("clusters.x")
    assert "task.claim_granted" in SERVICE_ONLY_KINDS and "member." in SERVICE_ONLY_KINDS


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_append_refuses_service_only_kinds(home: Path, kind: str) -> None:
    before = store_bytes(home)
    result = bzzz("log", "append", "--home", str(home), "--kind", kind, "--data", "{}")
    assert_one_line_error(result, "--kind", kind, "written by BZZZ's services, not by hand")
    assert store_bytes(home) == before


def test_a_batch_with_a_service_only_kind_changes_nothing(home: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    lines = [{"kind": "task.note", "data": {"i": 1}}, {"kind": "member.admitted", "data": {}}]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = store_bytes(home)
    result = bzzz("log", "append", "--home", str(home), "--batch", str(batch))
    assert_one_line_error(result, "--batch line 2", "member.admitted", "not by hand")
    assert store_bytes(home) == before


def test_hand_written_kinds_are_still_appended(home: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"kind": k, "data": {}}) + "\n" for k in HAND_KINDS))
    assert bzzz("log", "append", "--home", str(home), "--batch", str(batch)).code == 0
    one = bzzz("log", "append", "--home", str(home), "-k", "hmmm.reply", "--json")
    assert one.code == 0, one
    shown = bzzz("log", "show", "--home", str(home), "--json").lines()
    assert [e["kind"] for e in shown] == [*HAND_KINDS, "hmmm.reply"]


# 3. Tracebacks where a one-line error belongs -------------------------------------------


def test_init_on_a_file_or_a_device_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert_one_line_error(bzzz("init", "--home", str(afile)), str(afile), "not a folder")
    assert afile.read_text() == "not a folder"
    assert_one_line_error(bzzz("init", "--home", "/dev/null"), "/dev/null", "not a folder")


def test_init_below_a_file_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = bzzz("init", "--home", str(afile / "sub" / "node"))
    assert_one_line_error(result, str(afile), "not a folder")


def test_an_os_error_in_init_is_one_line(tmp_path: Path) -> None:
    result = bzzz("init", "--home", str(tmp_path / ("x" * 300)))
    assert_one_line_error(result, "File name too long")
    assert list(tmp_path.iterdir()) == []


def test_init_on_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    """A read-only bind mount, in a mount namespace of its own (root ignores 0500)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    folder = tmp_path / "ro"
    folder.mkdir()
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"'
    init = [sys.executable, "-m", "bzzz", "init", "--home"]
    results = {}
    for target in (folder, folder / "node"):
        done = subprocess.run(
            [unshare, "-m", "sh", "-c", script, "sh", str(folder), *init, str(target)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode == 99:
            pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
        results[target] = Run(done.returncode, done.stdout, done.stderr)
    assert_one_line_error(results[folder], str(folder), "not writable")
    assert_one_line_error(results[folder / "node"], str(folder), "not writable")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--peer", "nonsense", ["--peer", "'nonsense' is not HOST:PORT"]),
        ("--listen", "999.1.1.1:99999", ["--listen", "not HOST:PORT"]),
        ("--listen", "999.1.1.1:9999", ["--listen", "neither an IP address nor a host name"]),
        ("--peer", "host name:7420", ["--peer", "neither an IP address nor a host name"]),
    ],
)
def test_agent_addresses_are_checked_before_anything_starts(
    home: Path, option: str, value: str, words: list[str]
) -> None:
    result = bzzz("agent", "--home", str(home), "--no-mdns", option, value, timeout=30)
    assert_one_line_error(result, *words)
    assert not (home / "agent.sock").exists() and not (home / "agent.lock").exists()


DEEP = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (DEEP, ["--data", "nested deeper than 32 levels"]),
        (b'{"text": "caf\xe9"}', ["--data", "data.text", "byte 0xe9, which is not UTF-8"]),
        ('{"text": "x\\ud800y"}', ["--data", "data.text", "lone surrogate \\ud800"]),
        ('{"\\udfff": 1}', ["--data", "lone surrogate \\udfff"]),
        ('{"n": ' + "9" * 5000 + "}", ["--data", "a number is too long"]),
    ],
)
def test_bad_data_is_one_line(home: Path, data: str | bytes, words: list[str]) -> None:
    before = store_bytes(home)
    result = bzzz("log", "append", "--home", str(home), "--kind", "task.note", "--data", data)
    assert_one_line_error(result, *words)
    assert store_bytes(home) == before


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (('{"kind": "task.note", "data": ' + DEEP + "}").encode(), ["line 2", "nested deeper"]),
        (b'{"kind": "task.note", "data": {"t": "caf\xe9"}}', ["line 2", "not UTF-8"]),
        (b'{"kind": "task.note", "data": {"t": "\\ud800"}}', ["line 2", "lone surrogate"]),
        (b'{"kind": "task.note", "dta": {"t": 1}}', ["line 2", "unknown field 'dta'"]),
        (b'{"kind": "task.note", "data": {}, "seq": 7}', ["line 2", "unknown field 'seq'"]),
    ],
)
def test_bad_batch_lines_are_one_line_and_change_nothing(
    home: Path, tmp_path: Path, line: bytes, words: list[str]
) -> None:
    good = json.dumps({"kind": "task.note", "data": {"i": 1}}).encode()
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(good + b"\n" + line + b"\n" + good + b"\n")
    before = store_bytes(home)
    for source, stdin in ((str(batch), None), ("-", batch.read_bytes())):
        result = bzzz("log", "append", "--home", str(home), "--batch", source, stdin=stdin)
        assert_one_line_error(result, "--batch", *words)
    assert store_bytes(home) == before


def test_a_batch_file_in_another_encoding_is_one_line(home: Path, tmp_path: Path) -> None:
    batch = tmp_path / "latin1.jsonl"
    batch.write_bytes(json.dumps({"kind": "task.note", "data": {"t": "é"}}).encode("utf-16"))
    result = bzzz("log", "append", "--home", str(home), "--batch", str(batch))
    assert_one_line_error(result, "--batch line 1", "not UTF-8")


# 4. Rough edges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("log", "show", "--limit", "0"), ["--limit", "(see `bzzz log show --help`)"]),
        (("nope",), ["No such command 'nope'"]),
        (("log", "append", "--kind"), ["--kind", "requires an argument"]),
        (("claim", "request", "x", "--wait", "soon"), ["--wait", "valid number"]),
        (("id", "--colour"), ["--colour"]),
    ],
)
def test_usage_errors_are_one_line(args: Sequence[str], words: list[str]) -> None:
    result = bzzz(*args)
    assert_one_line_error(result, *words)
    assert "╭" not in result.err and "Usage:" not in result.err


def test_version() -> None:
    result = bzzz("--version")
    assert result.code == 0 and result.err == ""
    assert result.out == f"bzzz {metadata.version('bzzz')}\n"
    assert re.fullmatch(r"bzzz \d+\.\d+\.\d+\S*\n", result.out)


def test_help_still_works() -> None:
    result = bzzz("--help")
    assert result.code == 0 and "--version" in result.out and "audit" in result.out
    assert bzzz("log", "--help").code == 0


def test_no_python_none_in_human_output(home: Path) -> None:
    status = bzzz("status", "--home", str(home))
    assert status.code == 0, status
    assert "None" not in status.out
    assert "no cluster (bzzz init --new-cluster NAME or bzzz join TOKEN)" in status.out
    assert "not listening (the agent is not running)" in status.out
    assert bzzz("status", "--home", str(home), "--json").lines()[0]["cluster"] is None
    shown = bzzz("id", "--home", str(home))
    assert shown.code == 0 and "None" not in shown.out


def test_status_names_the_cluster_once_there_is_one(tmp_path: Path) -> None:
    founder = make_home(tmp_path / "founder", "--new-cluster", "bees")
    status = bzzz("status", "--home", str(founder))
    assert status.code == 0 and "cluster bees" in status.out and "None" not in status.out
