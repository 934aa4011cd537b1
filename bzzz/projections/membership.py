"""Reading the cluster's membership out of a store, anchored to the cluster's founding
entry, and storing only the logs of its members."""

from __future__ import annotations

from collections.abc import Callable

from bzzz.domain.entry import Entry
from bzzz.domain.membership import (
    FOUNDED,
    KINDS,
    Membership,
    MembershipAct,
    fold_membership,
)
from bzzz.domain.roles import Roles
from bzzz.projections.reading import entries_of_kinds
from bzzz.store import EventStore
from bzzz.store.ingest import IngestReport, Refusal

NOT_MEMBER = "not-member"


def membership_acts(store: EventStore) -> list[MembershipAct]:
    """Every membership entry the store holds. Damaged rows are skipped: the audit
    reports them, and membership must still be decidable."""
    return [MembershipAct.of(entry) for _, entry in entries_of_kinds(store, KINDS)]


def read_membership(store: EventStore, roles: Roles, founding: bytes | None) -> Membership:
    """The membership that follows from the founding entry `founding` (the cluster id;
    None only where no id is known, see `fold_membership`)."""
    return fold_membership(membership_acts(store), roles, founding)


def foundings(store: EventStore) -> list[Entry]:
    """Every founding entry the store holds (one, unless someone forged another)."""
    return [entry for _, entry in entries_of_kinds(store, [FOUNDED])]


Ingest = Callable[[list[bytes], Callable[[Entry], bool]], IngestReport]


def of_members(members: Membership, cluster_id: bytes) -> Callable[[Entry], bool]:
    """Whether an entry belongs in a store of this cluster: its author is or was a
    member, or it is the cluster's founding entry itself (where every store starts)."""

    def wanted(entry: Entry) -> bool:
        return members.ever_member(entry.author) or entry.hash == cluster_id

    return wanted


def ingest_members_only(
    ingest: Ingest,
    raws: list[bytes],
    cluster_id: bytes,
    members: Membership,
    reread: Callable[[], Membership],
    kept: Callable[[Membership], list[Entry]] | None = None,
) -> IngestReport:
    """Store only the entries of keys that are or were members of the cluster
    `cluster_id` (`members` as the caller last knew it). Entries of other keys make
    the fold be read again (`reread`): the store may hold their admission already, or
    the batch may bring it beside the key's own log. What no fold admits is refused as
    `not-member` and handed back in `report.unwanted`. `kept` hands over entries held
    back earlier (parked) whose authors a fold now admits: they go in with the batch's,
    so that a log's start and its continuation are stored together."""
    report = ingest(raws, of_members(members, cluster_id))
    held, report.unwanted = report.unwanted, []
    last = report
    # Read the fold again when something was held back: once at least, since `members`
    # may be older than the store (another session stored an admission a moment ago),
    # and again after each round that stored membership entries.
    first = True
    while held and (first or any(entry.kind in KINDS for entry in last.accepted)):
        first = False
        members = reread()
        wanted = of_members(members, cluster_id)
        again = [e for e in held if wanted(e)]
        if kept is not None:
            again = kept(members) + again
        if not again:
            break
        held = [e for e in held if not wanted(e)]
        last = ingest([e.raw for e in again], wanted)
        held += last.unwanted
        last.unwanted = []
        report.merge(last)
    counts: dict[bytes, int] = {}
    for entry in held:
        counts[entry.author] = counts.get(entry.author, 0) + 1
    report.refused.extend(
        Refusal(
            author,
            None,
            NOT_MEMBER,
            f"{count} entries by {author.hex()[:12]}, a key that is not and never was "
            "a member of this cluster",
        )
        for author, count in counts.items()
    )
    report.unwanted = held  # not stored: a caller may keep them until the fold changes
    return report
