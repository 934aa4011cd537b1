"""Reading the entries of some kinds from a store, page by page: what the on-demand
read models (membership, context, keys, members' addresses) share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bzzz.domain.entry import Entry
from bzzz.errors import EntryError
from bzzz.store import EventStore

PAGE = 10_000


def entries_of_kinds(
    store: EventStore, kinds: Sequence[str], after: int = 0
) -> Iterator[tuple[int, Entry]]:
    """Every stored entry of `kinds` past position `after`, with its position, in
    arrival order. Damaged rows are skipped: the audit reports them, and the readers
    must still decide."""
    while True:
        page = store.notifications(after=after, limit=PAGE, kinds=list(kinds))
        for stored in page:
            try:
                yield stored.position, stored.decode()
            except EntryError:
                continue
        if len(page) < PAGE:
            return
        after = page[-1].position
