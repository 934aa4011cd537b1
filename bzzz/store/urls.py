"""Store URLs: what a person writes in config.yaml, made into what SQLAlchemy needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bzzz.errors import ConfigError

# The default 5 s lock wait fails under load (DESIGN.md, Store).
SQLITE_BUSY_TIMEOUT_S = 30


@dataclass(frozen=True)
class StoreUrl:
    url: URL
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def display(self) -> str:
        return self.url.render_as_string(hide_password=True)


def resolve_store_url(text: str, base: Path | None = None) -> StoreUrl:
    """Parse a store URL. A relative SQLite path is relative to `base` (the node home),
    so a home can be moved; ``postgresql://`` means the psycopg 3 driver."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(
            f"store url {text!r} is not a database URL "
            "(try sqlite:///store.db or postgresql://user@host/db)"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise ConfigError("store url: an SQLite store needs a file path, not memory")
        path = Path(database)
        if not path.is_absolute() and base is not None:
            path = base / path
        url = url.set(database=str(path))
        connect_args: dict[str, Any] = {}
        if "timeout" not in url.query:
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        return StoreUrl(url, {"connect_args": connect_args} if connect_args else {})
    if backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        return StoreUrl(url)
    raise ConfigError(
        f"store url {text!r}: unsupported database {backend!r} (use sqlite or postgresql)"
    )
