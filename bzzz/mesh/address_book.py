"""Where every member listens, read from the `mesh.addresses` entries of their logs
(`bzzz.domain.addresses`), and what this node announces of itself."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ifaddr

from bzzz.domain import addresses as ad
from bzzz.domain.entry import Entry
from bzzz.projections.reading import entries_of_kinds
from bzzz.store import EventStore

Announcement = tuple[bytes, int, bytes]  # author, seq, body


def read_announcements(store: EventStore, after: int) -> tuple[list[Announcement], int]:
    """The announcements stored after position `after`, and the position read up to
    (runs on a worker thread; the caller folds them on the event loop)."""
    found: list[Announcement] = []
    for position, entry in entries_of_kinds(store, [ad.ANNOUNCED], after):
        found.append((entry.author, entry.seq, entry.body))
        after = position
    return found, after


def interface_addresses() -> list[str]:
    """Every address of this host's interfaces (for a node listening on all of them)."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):  # IPv6: (address, flowinfo, scope id)
                address, _, scope = ip.ip
                found.append(f"{address}%{adapter.name}" if scope else address)
            else:
                found.append(ip.ip)
    return found


class AddressBook:
    """Each member's announced addresses, kept current from stored entries."""

    def __init__(self) -> None:
        self.directory = ad.Directory()
        self.read_up_to = 0  # the store position read so far

    def take(self, announcements: Iterable[Announcement], read_up_to: int = 0) -> bool:
        """Fold announcements in; True when any member's addresses changed."""
        changed = False
        for author, seq, body in announcements:
            changed |= self.directory.note(author, seq, body)
        self.read_up_to = max(self.read_up_to, read_up_to)
        return changed

    def take_entries(self, entries: Iterable[Entry]) -> bool:
        return self.take((e.author, e.seq, e.body) for e in entries if e.kind == ad.ANNOUNCED)

    def stale(
        self, me: bytes, listen: str, bound_port: int, advertise: Sequence[str]
    ) -> tuple[str, ...] | None:
        """What this node should announce now, or None when its latest announcement
        already says it (or there is nothing one could dial)."""
        wildcard = not advertise and ad.parse_address(listen)[0] in ad.WILDCARDS
        interfaces = interface_addresses() if wildcard else []
        wanted = ad.to_announce(listen, bound_port, advertise, interfaces)
        if not wanted or wanted == self.directory.of(me):
            return None
        return wanted
