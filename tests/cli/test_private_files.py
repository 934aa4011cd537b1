"""A node home is private: the folder 0700, config.yaml, the keys and the store 0600,
whatever the umask or the folder's previous mode; `bzzz status` warns when it is not."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bzzz.errors import ConfigError
from bzzz.home.config import load_config, write_config
from bzzz.home.location import make_private_home, private_file_problems
from tests.support.cli import bzzz, make_home

SECRETS = ("agent.key", "age.key", "config.yaml", "store.db")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_home_made_under_umask_0_is_private(tmp_path: Path) -> None:
    where = tmp_path / "a" / "node"
    assert bzzz("init", "--home", str(where), "--name", "a", umask=0).code == 0
    assert mode(where) == 0o700
    assert {name: mode(where / name) for name in SECRETS} == dict.fromkeys(SECRETS, 0o600)
    assert bzzz("log", "append", "--home", str(where), "-k", "task.note", umask=0).code == 0
    assert private_file_problems(where) == []


def test_a_home_made_in_an_existing_0755_folder_becomes_0700(tmp_path: Path) -> None:
    where = tmp_path / "existing"
    where.mkdir()
    os.chmod(where, 0o755)
    assert bzzz("init", "--home", str(where), "--name", "a", umask=0o002).code == 0
    assert mode(where) == 0o700
    assert all(mode(where / name) == 0o600 for name in SECRETS)


def test_sqlite_side_files_are_private_while_the_store_is_open(tmp_path: Path) -> None:
    """The -wal and -shm files exist while a process holds the store: a follower."""
    where = make_home(tmp_path / "node")
    follower = subprocess.Popen(
        [sys.executable, "-m", "bzzz", "log", "show", "--follow", "--home", str(where)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(0),
    )
    try:
        assert bzzz("log", "append", "--home", str(where), "-k", "task.note", umask=0).code == 0
        deadline = time.monotonic() + 20
        side = [where / "store.db-wal", where / "store.db-shm"]
        while not all(p.exists() for p in side) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(p.exists() for p in side), "the follower's connection made no WAL files"
        assert [mode(p) for p in side] == [0o600, 0o600]
        assert private_file_problems(where) == []
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)


def test_write_config_is_0600_and_atomic(tmp_path: Path) -> None:
    where = make_home(tmp_path / "node")
    config = where / "config.yaml"
    os.chmod(config, 0o644)
    old = os.umask(0)
    try:
        write_config(where, load_config(where).model_copy(update={"role": "reviewer"}))
    finally:
        os.umask(old)
    assert mode(config) == 0o600
    assert load_config(where).role == "reviewer"
    assert sorted(p.name for p in where.iterdir()) == sorted(SECRETS)  # no temporary left


def test_status_warns_once_per_file_that_is_not_private(tmp_path: Path) -> None:
    where = make_home(tmp_path / "node")
    clean = bzzz("status", "--home", str(where))
    assert clean.code == 0 and clean.err == ""
    os.chmod(where, 0o755)
    os.chmod(where / "config.yaml", 0o644)
    os.chmod(where / "agent.key", 0o640)
    loose = bzzz("status", "--home", str(where))
    assert loose.code == 0
    warnings = loose.err.strip().splitlines()
    assert len(warnings) == 3, loose.err
    assert all(line.startswith("warning: ") for line in warnings)
    assert any(f"chmod 700 {where}" in line for line in warnings)
    assert any(f"chmod 600 {where / 'config.yaml'}" in line for line in warnings)
    assert any("agent.key: file mode 0640" in line for line in warnings)
    as_json = bzzz("status", "--home", str(where), "--json")
    assert as_json.code == 0 and len(as_json.err.strip().splitlines()) == 3
    assert as_json.lines()[0]["running"] is False  # stdout stays pure JSON


def test_private_file_problems_and_make_private_home(tmp_path: Path) -> None:
    where = tmp_path / "home"
    make_private_home(where)
    assert mode(where) == 0o700 and private_file_problems(where) == []
    (where / "x").write_text("")
    os.chmod(where / "x", 0o604)
    outside = tmp_path / "store.db"
    outside.write_text("")
    os.chmod(outside, 0o660)
    problems = private_file_problems(where, [outside, tmp_path / "missing-wal"])
    assert [p.split(":")[0] for p in problems] == [str(where / "x"), str(outside)]
    os.chmod(where, 0o750)
    make_private_home(where)  # an existing folder is tightened
    assert mode(where) == 0o700
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ConfigError, match="not a folder"):
        make_private_home(afile / "home")
