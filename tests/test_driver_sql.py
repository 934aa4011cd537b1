"""Statements run on the SQLite cursor write exactly what SQLAlchemy Core writes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    func,
    insert,
    select,
)
from sqlalchemy_utils.types.uuid import UUIDType

from bzzz.store import driver_sql

metadata = MetaData()
rows = Table(
    "rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stream", UUIDType(), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
    UniqueConstraint("stream", "version"),
)
INSERT = (
    insert(rows)
    .values(stream=bindparam("stream"), version=bindparam("version"), state=bindparam("state"))
    .returning(rows.c.id)
)
# A literal inside the statement (coalesce's 7) is a placeholder too, with its own value.
NEXT_VERSION = select(func.coalesce(func.max(rows.c.version), 7) + bindparam("step"))


def test_a_driver_insert_stores_what_core_stores(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    stream = uuid.UUID(bytes=bytes(range(16)))
    with engine.begin() as conn:
        assert conn.execute(NEXT_VERSION, {"step": 1}).scalar() == 8
        assert driver_sql.execute(conn, NEXT_VERSION, {"step": 1}).fetchall() == [(8,)]
        via_driver = driver_sql.execute(
            conn, INSERT, {"stream": stream, "version": 1, "state": b"\x00\xff"}
        ).fetchall()
        via_core = conn.execute(INSERT, {"stream": stream, "version": 2, "state": b"\x00\xff"})
        assert [tuple(r) for r in via_driver] == [(1,)] and via_core.scalar() == 2
        stored = conn.execute(select(rows.c.stream, rows.c.state).order_by(rows.c.id)).all()
        assert stored[0] == stored[1] == (stream, b"\x00\xff")
        assert driver_sql.execute(conn, NEXT_VERSION, {"step": 1}).fetchall() == [(3,)]
        with pytest.raises(KeyError):  # a parameter left out is an error, never a NULL
            driver_sql.execute(conn, INSERT, {"stream": stream, "version": 3})


def test_a_driver_insert_that_breaks_a_unique_index_raises_an_integrity_error(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    row = {"stream": uuid.uuid4(), "version": 1, "state": b"x"}
    with engine.connect() as conn, conn.begin():
        driver_sql.execute(conn, INSERT, row).fetchall()
        with pytest.raises(driver_sql.INTEGRITY_ERRORS):
            driver_sql.execute(conn, INSERT, row)
