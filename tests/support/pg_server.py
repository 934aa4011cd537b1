"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests and benchmarks.

Uses Debian's `postgresql` binaries. PostgreSQL refuses to run as root, so as root the
cluster is created and run as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(argv: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextmanager
def postgres_cluster(fast: bool = True) -> Iterator[str]:
    """Start a cluster; yield an admin URL (without database); stop and delete it after.

    `fast` turns off fsync: the server is never killed in the tests, so its durability is
    not what they exercise, and the suite runs faster."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL binaries not found: install Debian's `postgresql` package "
            "(`make test` does) or set BZZZ_TEST_POSTGRES_URL"
        )
    user = "postgres" if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="bzzz-pg-"))
    data = workdir / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    try:
        subprocess.run(
            _as_owner(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "bzzz",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                user,
            ),
            check=True,
            capture_output=True,
        )
        # The port is free when picked but not held: another process (a pytest-xdist
        # worker starting its own cluster, a daemon) may take it before the server binds
        # it, and then `pg_ctl start` fails. Pick again, a few times.
        log = workdir / "log"
        for attempt in range(5):
            port, logged = _free_port(), log.stat().st_size if log.exists() else 0
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir}"
            options += " -c max_connections=200"
            if fast:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = subprocess.run(
                _as_owner(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    user,
                ),
                capture_output=True,
            )
            if started.returncode == 0:
                break
            said = log.read_bytes()[logged:] if log.exists() else b""
            if attempt == 4 or b"could not bind" not in said:
                raise subprocess.CalledProcessError(
                    started.returncode, started.args, started.stdout, started.stderr + said
                )
        try:
            yield f"postgresql+psycopg://bzzz@127.0.0.1:{port}"
        finally:
            subprocess.run(
                _as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user
                ),
                capture_output=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _libpq(url: str, database: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://") + f"/{database}"


def create_database(server_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
