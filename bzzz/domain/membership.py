"""Who belongs to the cluster, decided from log entries alone.

Membership is a fold over the membership entries of every log a node holds, taken in
Lamport order (ties by author): the same entries (and the same roles) give the same
members on every node. A cluster is its founding entry: the fold starts from the one
`cluster.founded` entry whose hash is the cluster id, and any other founding entry (any
key can sign one, for any name) is ignored. An act counts only if its author was a
member when it acted and its role's authority allows it (`bzzz.domain.roles`). Entries
that break a rule are ignored, and `Membership.ignored` says why.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.entry import Entry
from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.domain.payload import payload_map
from bzzz.domain.roles import (
    Authority,
    Role,
    Roles,
    may_change_role,
    may_invite,
    may_remove,
    may_vote,
)

FOUNDED = "cluster.founded"
INVITED = "member.invited"
ADMITTED = "member.admitted"
REMOVED = "member.removed"
ROLE_CHANGED = "member.role_changed"
KINDS = (FOUNDED, INVITED, ADMITTED, REMOVED, ROLE_CHANGED)


@dataclass(frozen=True, slots=True)
class MembershipAct:
    """One membership entry, reduced to what the rules need."""

    author: bytes
    seq: int
    lamport: int
    ts: int
    kind: str
    body: bytes
    hash: bytes = b""

    @classmethod
    def of(cls, entry: Entry) -> MembershipAct:
        return cls(
            entry.author, entry.seq, entry.lamport, entry.ts, entry.kind, entry.body, entry.hash
        )


@dataclass(frozen=True, slots=True)
class Member:
    agent_id: bytes
    role: str
    name: str
    admitted_by: bytes | None
    since_lamport: int
    # The seq of the admission in the admitter's log: a peer is sent a member's log
    # only once it holds that admission (else it could not tell the log is a member's).
    admitted_seq: int = 0


@dataclass(frozen=True, slots=True)
class Invite:
    inviter: bytes
    role: str
    expires_ms: int


@dataclass
class Membership:
    cluster: str | None = None  # the founding entry's name for it: a label
    cluster_id: bytes | None = None  # the founding entry's hash: the cluster's identity
    founder: bytes | None = None
    members: dict[bytes, Member] = field(default_factory=dict)
    removed: dict[bytes, Member] = field(default_factory=dict)
    invites: dict[bytes, Invite] = field(default_factory=dict)
    used_invites: set[bytes] = field(default_factory=set)
    ignored: list[tuple[MembershipAct, str]] = field(default_factory=list)
    # Per author, the seq of its latest act folded in: the cut of the logs this state
    # was decided from, which an `election.leader` entry names (see `fold_cut`).
    cut: dict[bytes, int] = field(default_factory=dict)

    def is_member(self, agent_id: bytes) -> bool:
        return agent_id in self.members

    def ever_member(self, agent_id: bytes) -> bool:
        """Whether the key is or was a member: only such logs belong in a store."""
        return agent_id in self.members or agent_id in self.removed

    def admission(self, agent_id: bytes) -> tuple[bytes, int] | None:
        """Where a member's admission is: (admitter, seq in its log); None for the
        founder and for keys that never were members."""
        member = self.members.get(agent_id) or self.removed.get(agent_id)
        if member is None or member.admitted_by is None:
            return None
        return member.admitted_by, member.admitted_seq

    def open_invite(self, secret_hash: bytes, inviter: bytes, now_ms: int) -> Invite | None:
        """The invite with this secret hash if `inviter` issued it and it can still be used."""
        invite = self.invites.get(secret_hash)
        if invite is None or invite.inviter != inviter or secret_hash in self.used_invites:
            return None
        if invite.expires_ms < now_ms or inviter not in self.members:
            return None
        return invite


def founded_body(cluster: str, name: str, role: str) -> dict[str, Any]:
    return {"cluster": cluster, "name": name, "role": role}


def founded_name(body: bytes) -> str | None:
    """The cluster name a founding entry's body gives, if it is well formed."""
    data = payload_map(body)
    return _text(data, "cluster") if data is not None else None


def invited_body(secret_hash: bytes, role: str, expires_ms: int) -> dict[str, Any]:
    return {"token_hash": secret_hash, "role": role, "expires_ms": expires_ms}


def admitted_body(member: bytes, name: str, role: str, secret_hash: bytes) -> dict[str, Any]:
    return {"member": member, "name": name, "role": role, "token_hash": secret_hash}


def removed_body(member: bytes, reason: str) -> dict[str, Any]:
    return {"member": member, "reason": reason}


def role_changed_body(member: bytes, role: str) -> dict[str, Any]:
    return {"member": member, "role": role}


def _text(data: dict[str, Any], key: str, limit: int = 64) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _key(data: dict[str, Any], key: str, size: int) -> bytes | None:
    value = data.get(key)
    return value if isinstance(value, bytes) and len(value) == size else None


def _ordered(acts: Iterable[MembershipAct]) -> list[MembershipAct]:
    return sorted(acts, key=lambda a: (a.lamport, a.author, a.seq))


NOT_OURS = "not this cluster's founding entry"
NO_ANCHOR = "several founding entries and no cluster id to choose between them"


def founding_problem(state: Membership, cluster_id: bytes) -> str | None:
    """Why the membership did not start from the founding entry `cluster_id`, if not."""
    if state.cluster_id == cluster_id:
        return None
    for act, why in state.ignored:
        if act.hash == cluster_id:
            return f"the cluster's founding entry was not taken: {why}"
    return "the store holds no founding entry with this cluster id"


def founding_of(acts: Iterable[MembershipAct], founding: bytes | None) -> bytes | None:
    """The hash of the founding entry to fold from: `founding` when the cluster id is
    known, else the only founding entry among the acts (none if there are several:
    without an id nobody can tell the true one from a forgery)."""
    if founding is not None:
        return founding
    candidates = {a.hash for a in acts if a.kind == FOUNDED}
    return next(iter(candidates)) if len(candidates) == 1 else None


def fold_membership(
    acts: Iterable[MembershipAct], roles: Roles, founding: bytes | None = None
) -> Membership:
    """Membership from `acts`, anchored to the founding entry whose hash is `founding`
    (the cluster id; see `founding_of` for None)."""
    ordered = _ordered(acts)
    anchor = founding_of(ordered, founding)
    state = Membership()
    for act in ordered:
        if act.kind == FOUNDED and act.hash != anchor:
            problem: str | None = NOT_OURS if anchor is not None else NO_ANCHOR
        else:
            problem = _apply(state, roles, act)
        if problem is not None:
            state.ignored.append((act, problem))
        state.cut[act.author] = max(state.cut.get(act.author, 0), act.seq)
    return state


def fold_cut(
    acts: Iterable[MembershipAct],
    cut: dict[bytes, int],
    roles: Roles,
    founding: bytes | None = None,
) -> Membership:
    """The membership decided from the acts within `cut` alone: what a node that had
    folded exactly those acts decided, whatever else has arrived since."""
    return fold_membership((a for a in acts if a.seq <= cut.get(a.author, 0)), roles, founding)


def can_administer(role: Role) -> bool:
    """Whether a member of this role can both admit and remove members."""
    return role.authority >= Authority.DECISION


def leaves_an_administrator(
    state: Membership, roles: Roles, member: bytes, new_role: str | None = None
) -> bool:
    """Whether, after `member` is removed (or given `new_role`), some member can still
    admit and remove others: without one, nobody could ever join the cluster again."""
    for other in state.members.values():
        name = new_role if other.agent_id == member else other.role
        if other.agent_id == member and new_role is None:
            continue
        role = roles.get(name) if name is not None else None
        if role is not None and can_administer(role):
            return True
    return False


def voters_of(state: Membership, roles: Roles) -> frozenset[bytes]:
    """The members whose role votes in the admin election."""
    return frozenset(
        m.agent_id for m in state.members.values() if (r := roles.get(m.role)) and may_vote(r)
    )


def voter_history(
    acts: Iterable[MembershipAct], roles: Roles, founding: bytes | None = None
) -> list[tuple[int, frozenset[bytes]]]:
    """The voter set after each membership act, with the act's lamport: what the voters
    were when an entry with a given lamport was written (see `voters_at`)."""
    ordered = _ordered(acts)
    anchor = founding_of(ordered, founding)
    state, history = Membership(), []
    for act in ordered:
        if act.kind == FOUNDED and act.hash != anchor:
            continue
        if _apply(state, roles, act) is None:
            history.append((act.lamport, voters_of(state, roles)))
    return history


def voters_at(history: list[tuple[int, frozenset[bytes]]], lamport: int) -> frozenset[bytes]:
    """The voters as of acts with a lamport below `lamport`: the ones its writer could
    have seen (anything it had seen has a lower lamport than what it wrote after)."""
    index = bisect.bisect_left(history, lamport, key=lambda step: step[0])
    return history[index - 1][1] if index else frozenset()


def _apply(state: Membership, roles: Roles, act: MembershipAct) -> str | None:
    data = payload_map(act.body)
    if data is None:
        return "body is not a CBOR map"
    if act.kind == FOUNDED:
        return _found(state, roles, act, data)
    member = state.members.get(act.author)
    if member is None:
        return "its author was not a member at the time"
    actor = roles.get(member.role)
    if actor is None:
        return f"its author's role {member.role!r} is not defined"
    if act.kind == INVITED:
        return _invite(state, roles, actor, act, data)
    if act.kind == ADMITTED:
        return _admit(state, act, data)
    if act.kind == REMOVED:
        return _remove(state, roles, actor, data)
    if act.kind == ROLE_CHANGED:
        return _change_role(state, roles, actor, data)
    return f"not a membership kind: {act.kind}"


def _found(state: Membership, roles: Roles, act: MembershipAct, data: dict[str, Any]) -> str | None:
    if state.founder is not None:
        return "the cluster was already founded"
    if act.seq != 1:
        return "a cluster is founded by the first entry of its founder's log"
    cluster, name, role = _text(data, "cluster"), _text(data, "name"), _text(data, "role")
    if cluster is None or name is None or role is None:
        return "cluster, name and role must be text"
    if role not in roles:
        return f"no role named {role!r}"
    state.cluster, state.cluster_id, state.founder = cluster, act.hash, act.author
    state.members[act.author] = Member(act.author, role, name, None, act.lamport)
    return None


def _invite(
    state: Membership, roles: Roles, actor: Role, act: MembershipAct, data: dict[str, Any]
) -> str | None:
    token_hash, role = _key(data, "token_hash", HASH_BYTES), _text(data, "role")
    expires = data.get("expires_ms")
    if token_hash is None or role is None or type(expires) is not int:
        return "token_hash, role and expires_ms are required"
    if token_hash in state.invites:
        return "an invite with this token already exists"
    wanted = roles.get(role)
    if wanted is None:
        return f"no role named {role!r}"
    if not may_invite(actor, wanted):
        return f"a {actor.name} may not invite a {role}"
    state.invites[token_hash] = Invite(act.author, role, expires)
    return None


def _admit(state: Membership, act: MembershipAct, data: dict[str, Any]) -> str | None:
    member, token_hash = _key(data, "member", KEY_BYTES), _key(data, "token_hash", HASH_BYTES)
    name, role = _text(data, "name"), _text(data, "role")
    if member is None or token_hash is None or name is None or role is None:
        return "member, name, role and token_hash are required"
    invite = state.invites.get(token_hash)
    if invite is None or invite.inviter != act.author:
        return "no invite of its author's with this token"
    if token_hash in state.used_invites:
        return "the invite was already used"
    if act.ts > invite.expires_ms:
        return "the invite had expired"
    if role != invite.role:
        return "the role differs from the invite's"
    state.used_invites.add(token_hash)
    state.removed.pop(member, None)
    state.members[member] = Member(member, role, name, act.author, act.lamport, act.seq)
    return None


def _target(state: Membership, roles: Roles, data: dict[str, Any]) -> tuple[Member, Role] | str:
    member = _key(data, "member", KEY_BYTES)
    if member is None:
        return "member is required"
    target = state.members.get(member)
    if target is None:
        return "not a member"
    role = roles.get(target.role)
    if role is None:
        return f"the member's role {target.role!r} is not defined"
    return target, role


def _remove(state: Membership, roles: Roles, actor: Role, data: dict[str, Any]) -> str | None:
    found = _target(state, roles, data)
    if isinstance(found, str):
        return found
    target, role = found
    if not may_remove(actor, role):
        return f"a {actor.name} may not remove a {role.name}"
    del state.members[target.agent_id]
    state.removed[target.agent_id] = target
    return None


def _change_role(state: Membership, roles: Roles, actor: Role, data: dict[str, Any]) -> str | None:
    found = _target(state, roles, data)
    if isinstance(found, str):
        return found
    target, old = found
    name = _text(data, "role")
    new = roles.get(name) if name is not None else None
    if new is None:
        return f"no role named {name!r}"
    if not may_change_role(actor, old, new):
        return f"a {actor.name} may not make a {old.name} a {new.name}"
    state.members[target.agent_id] = Member(
        target.agent_id,
        new.name,
        target.name,
        target.admitted_by,
        target.since_lamport,
        target.admitted_seq,
    )
    return None
