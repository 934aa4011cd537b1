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


INSERT_PLAIN = insert(rows).values(
    stream=bindparam("stream"), version=bindparam("version"), state=bindparam("state")
)


def test_insert_many_stores_what_core_stores_and_returns_the_new_ids(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)

    def batch(*streams: uuid.UUID) -> list[dict[str, object]]:
        return [
            {"stream": stream, "version": version, "state": bytes([version])}
            for stream in streams
            for version in range(1, 6)
        ]

    with engine.begin() as conn:
        core_ids = [r[0] for r in conn.execute(INSERT, batch(uuid.UUID(int=1)))]
        ids = driver_sql.insert_many(
            conn, INSERT_PLAIN, batch(uuid.UUID(int=2), uuid.UUID(int=3)), repeated=("stream",)
        )
        assert driver_sql.insert_many(conn, INSERT_PLAIN, []) == []
        one = driver_sql.insert_many(conn, INSERT_PLAIN, batch(uuid.UUID(int=4))[:1])
        stored = conn.execute(
            select(rows.c.id, rows.c.stream, rows.c.version, rows.c.state).order_by(rows.c.id)
        ).all()
    assert core_ids == [1, 2, 3, 4, 5] and ids == list(range(6, 16)) and one == [16]
    assert [r.id for r in stored] == core_ids + ids + one
    written = [
        (b["stream"], b["version"], b["state"])
        for b in batch(*(uuid.UUID(int=n) for n in (1, 2, 3))) + batch(uuid.UUID(int=4))[:1]
    ]
    assert [(r.stream, r.version, r.state) for r in stored] == written


def test_insert_many_that_breaks_a_unique_index_raises_and_its_transaction_undoes_it(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    stream = uuid.uuid4()
    batch = [{"stream": stream, "version": v, "state": b"x"} for v in (1, 2, 2, 3)]
    with pytest.raises(driver_sql.INTEGRITY_ERRORS), engine.begin() as conn:
        driver_sql.insert_many(conn, INSERT_PLAIN, batch, repeated=("stream",))
    with pytest.raises(driver_sql.INTEGRITY_ERRORS), engine.begin() as conn:  # one row
        driver_sql.insert_many(conn, INSERT_PLAIN, batch[:1])
        driver_sql.insert_many(conn, INSERT_PLAIN, batch[:1])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rows)).scalar() == 0
