"""The election as a node sees it: the running node's view (from the election service)
or what the logs alone prove (for `bzzz election status` with no agent running)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from bzzz.domain import leadership as lead
from bzzz.domain import membership as ms
from bzzz.domain.entry import Entry
from bzzz.domain.leadership_audit import KINDS as LEADERSHIP_KINDS
from bzzz.domain.leadership_audit import audit_leadership
from bzzz.domain.roles import Roles
from bzzz.errors import EntryError
from bzzz.store import EventStore


@dataclass(frozen=True)
class VoterView:
    agent_id: bytes
    name: str | None
    reachable: bool | None  # None: not known (no agent running)
    score: float | None


@dataclass(frozen=True)
class ElectionView:
    term: int
    role: str | None  # None: no agent running
    leader: bytes | None
    leader_proven: bool
    voters: list[VoterView]
    transferring_to: bytes | None
    proof: lead.Leadership
    names: dict[bytes, str]


def offline_view(store: EventStore, roles: Roles, founding: bytes | None) -> ElectionView:
    """What the logs alone say: the latest proven leader and the voters of today."""
    entries: list[Entry] = []
    after = 0
    while page := store.notifications(after=after, kinds=LEADERSHIP_KINDS):
        for stored in page:
            with contextlib.suppress(EntryError):
                entries.append(stored.decode())
        after = page[-1].position
    # One read serves both: the membership entries are among the leadership kinds.
    acts = [ms.MembershipAct.of(e) for e in entries if e.kind in ms.KINDS]
    membership = ms.fold_membership(acts, roles, founding)
    voters = ms.voters_of(membership, roles)
    proof = audit_leadership(entries, roles, founding).proof
    names = {m.agent_id: m.name for m in membership.members.values()}
    latest = proof.latest
    return ElectionView(
        term=latest.term if latest else 0,
        role=None,
        leader=latest.leader if latest else None,
        leader_proven=latest is not None,
        voters=[VoterView(v, names.get(v), None, None) for v in sorted(voters)],
        transferring_to=None,
        proof=proof,
        names=names,
    )
