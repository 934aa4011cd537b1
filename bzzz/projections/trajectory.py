"""A task's trajectory from the store: every ``exec.*`` entry, folded by
`bzzz.domain.trajectory`."""

from __future__ import annotations

from bzzz.domain import tools as tl
from bzzz.domain.payload import payload_map
from bzzz.domain.trajectory import Recorded, Run, fold_trajectory
from bzzz.store import EventStore

PAGE = 1000


def read_trajectory(store: EventStore, task: str) -> list[Run]:
    recorded = []
    after = 0
    while True:
        page = store.notifications(after=after, limit=PAGE, kinds=tl.KINDS)
        for stored in page:
            entry = stored.decode()
            data = payload_map(entry.body)
            if data is not None and data.get("task") == task:
                recorded.append(Recorded(entry.author, entry.kind, entry.ts, entry.hash, data))
        if len(page) < PAGE:
            break
        after = page[-1].position
    return fold_trajectory(task, recorded)
