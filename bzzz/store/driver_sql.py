"""The few statements every live entry costs, run on the DBAPI cursor on SQLite.

A daemon stores most live entries one at a time: an insert and a head move each. On
SQLite, SQLAlchemy's Core execute spends 50-90 us of Python on each (execution context,
parameter processing, result wrapping), more than SQLite takes to run it. Here each such
statement is still built and compiled by SQLAlchemy, once per dialect, and its values
pass through the column types' own bind processors, so the rows are exactly what Core
would write; only the per-call machinery is skipped.

SQLite only (its paramstyle is positional and it has no lost connections to detect);
on PostgreSQL Core runs the statement.
Errors are the driver's own (`sqlite3.Error`): the store maps them as it maps Core's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

# What the driver raises, beside SQLAlchemy's own errors, when a driver statement fails.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)


class Rows(Protocol):
    """What both a DBAPI cursor and a Core result offer the callers here."""

    @property
    def rowcount(self) -> int: ...

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
        args = []
        for name, process, fixed in self._params:
            value = params[name] if fixed is _GIVEN else params.get(name, fixed)
            args.append(value if process is None else process(value))
        cursor = conn.connection.cursor()
        cursor.execute(self.sql, args)
        return cursor


_GIVEN = object()  # a parameter the caller must give
# SQLite's compilations, keyed by the statement's id; the statement is kept with it, so
# the id stays its own.
_compiled: dict[int, tuple[Executable, DriverStatement]] = {}


def execute(conn: Connection, statement: Executable, params: Mapping[str, Any]) -> Rows:
    """Run a long-lived statement (a module or recorder constant) with one set of
    parameters: on the SQLite cursor, else through Core."""
    dialect = conn.dialect
    if dialect.name != "sqlite":
        return conn.execute(statement, params)
    cached = _compiled.get(id(statement))
    if cached is None:
        cached = _compiled[id(statement)] = (statement, DriverStatement(statement, dialect))
    return cached[1].run(conn, params)
