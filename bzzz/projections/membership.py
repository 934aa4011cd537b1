"""Reading the cluster's membership out of a store."""

from __future__ import annotations

from bzzz.domain.membership import KINDS, Membership, MembershipAct, fold_membership
from bzzz.domain.roles import Roles
from bzzz.errors import EntryError
from bzzz.store import EventStore

_PAGE = 10_000


def read_membership(store: EventStore, roles: Roles) -> Membership:
    """Fold every membership entry the store holds. Damaged rows are skipped: the
    audit reports them, and membership must still be decidable."""
    acts: list[MembershipAct] = []
    after = 0
    while True:
        page = store.notifications(after=after, limit=_PAGE, kinds=KINDS)
        for stored in page:
            try:
                entry = stored.decode()
            except EntryError:
                continue
            acts.append(MembershipAct.of(entry))
        if len(page) < _PAGE:
            return fold_membership(acts, roles)
        after = page[-1].position
