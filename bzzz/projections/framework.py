"""A small projection framework over the store's notification log.

Each batch's view rows and its tracking record are written in one transaction, and the
tracking record only moves forward from where this runner read it: a crash replays the
batch from the last commit, and two racing runners cannot both apply it. On SQLite there
is no LISTEN/NOTIFY, so runners poll (DESIGN.md, Store).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError as EsIntegrityError
from sqlalchemy import MetaData, delete, insert, update
from sqlalchemy.orm import Session

from bzzz.domain.entry import Entry
from bzzz.errors import ConflictError, EntryError
from bzzz.store import EventStore
from bzzz.store.ddl import ensure_tables

BATCH = 1000


class Projection(ABC):
    """A read model. `name` keys its tracking record (at most 32 characters)."""

    name: ClassVar[str]
    metadata: ClassVar[MetaData]

    @abstractmethod
    def apply(self, session: Session, batch: Sequence[tuple[int, Entry]]) -> None:
        """Fold (position, entry) pairs, in arrival order, into the view rows."""

    def clear(self, session: Session) -> None:
        for table in reversed(self.metadata.sorted_tables):
            session.execute(delete(table))


class ProjectionRunner:
    def __init__(self, store: EventStore, projection: Projection, batch: int = BATCH) -> None:
        self.store = store
        self.projection = projection
        self.batch = batch
        ensure_tables(store.engine, projection.metadata.sorted_tables)
        self._tracking = store.recorder.tracking_table

    def position(self) -> int:
        return self.store.recorder.max_tracking_id(self.projection.name) or 0

    def behind(self) -> int:
        return max(0, self.store.max_position() - self.position())

    def run_once(self) -> int:
        """Apply the next batch; how many notifications it consumed (0: caught up).
        Entries that no longer decode (a damaged store) are passed over, the same way
        on every replay, so a rebuild still reaches the same result."""
        start = self.position()
        rows = self.store.notifications(after=start, limit=self.batch)
        if not rows:
            return 0
        batch: list[tuple[int, Entry]] = []
        for row in rows:
            try:
                batch.append((row.position, row.decode()))
            except EntryError:
                continue
        try:
            with self.store.datastore.transaction(commit=True) as session:
                self.projection.apply(session, batch)
                self._advance(session, start, rows[-1].position)
        except (sqlalchemy.exc.IntegrityError, EsIntegrityError):
            # Another runner applied this batch first (it inserted the same view rows).
            raise ConflictError(f"projection {self.projection.name} raced another runner") from None
        return len(rows)

    def catch_up(self) -> int:
        total = 0
        while True:
            try:
                done = self.run_once()
            except ConflictError:
                continue  # another runner applied that batch; carry on from its position
            if done == 0:
                return total
            total += done

    def rebuild(self) -> int:
        """Forget everything and replay from the first notification."""
        name = self.projection.name
        with self.store.datastore.transaction(commit=True) as session:
            self.projection.clear(session)
            session.execute(delete(self._tracking).where(self._tracking.c.application_name == name))
        return self.catch_up()

    def _advance(self, session: Session, start: int, end: int) -> None:
        t = self._tracking.c
        name = self.projection.name
        if start == 0:
            session.execute(
                insert(self._tracking).values(application_name=name, notification_id=end)
            )
            return
        moved = session.execute(
            update(self._tracking)
            .where(t.application_name == name, t.notification_id == start)
            .values(notification_id=end)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(f"projection {name} was advanced by another runner")
