"""Creating tables when several processes may open a fresh store at the same moment."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy.exc
from sqlalchemy import Engine, Table, inspect


def ensure_tables(engine: Engine, tables: Iterable[Table]) -> None:
    """Create what is missing. Losing a creation race to another process is success."""
    for table in tables:
        try:
            table.create(engine, checkfirst=True)
        except sqlalchemy.exc.DatabaseError:
            if not inspect(engine).has_table(table.name, schema=table.schema):
                raise
