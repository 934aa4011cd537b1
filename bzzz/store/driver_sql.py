"""The statements every entry costs, run on the DBAPI cursor on SQLite.

A daemon stores most live entries one at a time: an insert and a head move each. On
SQLite, SQLAlchemy's Core execute spends 50-90 us of Python on each (execution context,
parameter processing, result wrapping), more than SQLite takes to run it. Here each such
statement is still built and compiled by SQLAlchemy, once per dialect, and its values
pass through the column types' own bind processors, so the rows are exactly what Core
would write; only the per-call machinery is skipped.

Rows in bulk (a catch-up frame holds thousands) go in one `executemany`, and a value
that recurs in every row (the author's stream id) is processed once per call: the UUID
type's processor is most of what Core spends on a row.

SQLite only (its paramstyle is positional and it has no lost connections to detect);
on PostgreSQL Core runs the statement.
Errors are the driver's own (`sqlite3.Error`): the store maps them as it maps Core's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

# What the driver raises, beside SQLAlchemy's own errors, when a driver statement fails.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)


class Rows(Protocol):
    """What both a DBAPI cursor and a Core result offer the callers here."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class DriverStatement:
    """A Core statement compiled once for a dialect, with its parameters' processors."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.positiontup is None:
            raise ValueError("only a positional paramstyle can be run on the cursor")
        self.sql = str(compiled)
        # Each bound parameter in order: its name, its type's processor, and its value
        # when the statement fixes one (a literal such as coalesce's 0).
        self._params: list[tuple[str, Callable[[Any], Any] | None, Any]] = [
            (name, bind.type.bind_processor(dialect), _GIVEN if bind.required else bind.value)
            for name in compiled.positiontup
            for bind in (compiled.binds[name],)
        ]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Rows:
        cursor = conn.connection.cursor()
        cursor.execute(self.sql, _args(self._params, params))
        return cursor

    def run_many(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], repeated: Collection[str]
    ) -> Rows:
        """One executemany; each distinct value of a `repeated` parameter is processed once."""
        plan = [
            (
                name,
                lru_cache(maxsize=None)(process) if process and name in repeated else process,
                fixed,
            )
            for name, process, fixed in self._params
        ]
        cursor = conn.connection.cursor()
        cursor.executemany(self.sql, [_args(plan, params) for params in rows])
        return cursor


def _args(
    plan: Sequence[tuple[str, Callable[[Any], Any] | None, Any]], params: Mapping[str, Any]
) -> list[Any]:
    args = []
    for name, process, fixed in plan:
        value = params[name] if fixed is _GIVEN else params.get(name, fixed)
        args.append(value if process is None else process(value))
    return args


_GIVEN = object()  # a parameter the caller must give
_LAST_ID = select(func.last_insert_rowid())
# SQLite's compilations, keyed by the statement's id; the statement is kept with it, so
# the id stays its own.
_compiled: dict[int, tuple[Executable, DriverStatement]] = {}


def _statement(conn: Connection, statement: Executable) -> DriverStatement:
    cached = _compiled.get(id(statement))
    if cached is None:
        cached = _compiled[id(statement)] = (statement, DriverStatement(statement, conn.dialect))
    return cached[1]


def execute(conn: Connection, statement: Executable, params: Mapping[str, Any]) -> Rows:
    """Run a long-lived statement (a module or recorder constant) with one set of
    parameters: on the SQLite cursor, else through Core."""
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, params)
    return _statement(conn, statement).run(conn, params)


def insert_many(
    conn: Connection,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    repeated: Collection[str] = (),
) -> list[int]:
    """Insert `rows` with a long-lived INSERT (no RETURNING) on the SQLite cursor; the
    new rows' ids, in order.

    SQLite has one writer, and this transaction is it until commit: the rows take the
    ids after the table's largest, in order, so the last id and the count give them all.
    One row (most live entries) is one plain execute, whose cursor knows its id.
    SQLite only: on PostgreSQL, Core's multi-row insert returns the ids itself."""
    if conn.dialect.name != "sqlite":
        raise ValueError("insert_many runs on SQLite only")
    if not rows:
        return []
    driver = _statement(conn, statement)
    if len(rows) == 1:
        cursor = driver.run(conn, rows[0])
        last = cursor.lastrowid
    else:
        cursor = driver.run_many(conn, rows, repeated)
        last = _statement(conn, _LAST_ID).run(conn, {}).fetchall()[0][0]
    if cursor.rowcount != len(rows):
        raise sqlite3.OperationalError(f"inserted {cursor.rowcount} of {len(rows)} rows")
    return list(range(int(last) - len(rows) + 1, int(last) + 1))
