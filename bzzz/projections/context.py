"""The shared context a store holds, by UCXL address (`bzzz.domain.context`), read from
its entries on demand: for `bzzz ucxl`, `bzzz decide` and the control socket's
`ucxl_search`/`ucxl_history` (and, later, the UCXI server); `version_json` is the JSON
all of them answer with.

Sealed entries are opened with the keyring a reader hands in (`keyring=`): the running
agent's (`KeyService.keyring`) or one built from the logs (`offline_keyring`); without
one, every sealed version is hidden (`Context.hidden`). The elected admin's curation
(`context.linked`, `context.superseded`: `bzzz.domain.slurp`) is checked against the
leaders the logs prove and shown on the versions it names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bzzz.domain import slurp as sl
from bzzz.domain import ucxl
from bzzz.domain.context import KINDS, Context, ContextEntry, Item, Version, fold_context
from bzzz.domain.entry import Entry
from bzzz.domain.membership import Membership
from bzzz.domain.roles import Roles, can_make_decisions
from bzzz.domain.sealing import Opened
from bzzz.projections.keyring import Keyring
from bzzz.projections.leadership import offline_view
from bzzz.projections.membership import read_membership
from bzzz.projections.reading import entries_of_kinds
from bzzz.store import EventStore

READ_KINDS = (*KINDS, *sl.KINDS)


def context_entry(entry: Entry) -> ContextEntry:
    return ContextEntry(entry.author, entry.seq, entry.ts, entry.kind, entry.hash, entry.body)


def act_entry(entry: Entry) -> sl.ActEntry:
    return sl.ActEntry(entry.author, entry.seq, entry.lamport, entry.kind, entry.hash, entry.body)


def context_entries(store: EventStore) -> list[ContextEntry]:
    """Every entry of a kind that may be context (damaged rows skipped: the audit
    reports them)."""
    return [context_entry(e) for _, e in entries_of_kinds(store, KINDS)]


class _KeyringOpener:
    """Opens the context entries of one read with a keyring (which wants whole entries)."""

    def __init__(self, keyring: Keyring, entries: Iterable[Entry]) -> None:
        self.keyring = keyring
        self.entries = {e.hash: e for e in entries}

    def __call__(self, entry: ContextEntry) -> Opened:
        return self.keyring.open(self.entries[entry.hash])


def read_context(
    store: EventStore,
    roles: Roles,
    cluster_id: bytes | None,
    project: str,
    keyring: Keyring | None = None,
) -> Context:
    """The context of the cluster whose founding entry is `cluster_id`: entries of its
    members (past members too, in the role they had when removed), sealed ones opened
    with `keyring` when it holds their role's key, curated by the admins' acts."""
    membership = read_membership(store, roles, cluster_id)
    read = [e for _, e in entries_of_kinds(store, READ_KINDS)]
    entries = [e for e in read if e.kind in KINDS]
    acts = [act_entry(e) for e in read if e.kind in sl.KINDS]
    context = _fold(entries, roles, membership, project, keyring)
    if not acts:
        return context
    proof = offline_view(store, roles, cluster_id).proof
    leaders = {term: p.leader for term, p in proof.proven.items()}
    return sl.curate(context, sl.fold_acts(acts, leaders, proof.ends(), context))


def _fold(
    entries: list[Entry],
    roles: Roles,
    membership: Membership,
    project: str,
    keyring: Keyring | None,
) -> Context:
    """Context entries folded: by members (past ones in the role they had when
    removed), decisions from deciding roles only, sealed ones opened with `keyring`."""
    roles_of = {key: m.role for key, m in membership.removed.items()}
    roles_of.update({key: m.role for key, m in membership.members.items()})
    deciding = frozenset(r.name for r in roles.by_name.values() if can_make_decisions(r))
    opener = _KeyringOpener(keyring, entries) if keyring is not None else None
    return fold_context((context_entry(e) for e in entries), roles_of, project, deciding, opener)


def fold_more(
    context: Context,
    entries: list[Entry],
    roles: Roles,
    membership: Membership,
    keyring: Keyring | None = None,
) -> Context:
    """`context` with context entries that arrived after it was read: what
    `read_context` would give, as long as no membership, election, key or curation
    entry arrived meanwhile (those change what earlier entries mean: read again)."""
    added = [e for e in entries if e.kind in KINDS]
    return context.merged(_fold(added, roles, membership, context.project, keyring))


def version_address(item: Item, version: Version) -> str:
    """The address of one version of an item (its temporal part ~vN)."""
    a = item.address
    numbered = ucxl.Temporal(ucxl.TemporalKind.VERSION, version.number)
    return str(ucxl.Address(a.agent, a.role, a.project, a.task, numbered, a.path))


def version_json(item: Item, version: Version) -> dict[str, Any]:
    """One version as `bzzz ucxl ... --json` and the control socket give it."""
    return {
        "address": version_address(item, version),
        "latest": str(item.address),
        "version": version.number,
        "versions": len(item.versions),
        "author": version.author.hex(),
        "seq": version.seq,
        "ts": version.ts,
        "kind": version.kind,
        "hash": version.hash.hex(),
        "text": version.text,
        "sealed_for": version.sealed_for,
        "readable": version.readable,
        "links": [{"task": link.task, "thread": link.thread} for link in version.links],
        "superseded_by": version.superseded_by.hex() if version.superseded_by else None,
    }


def hidden_json(context: Context, pattern: ucxl.Address) -> list[dict[str, Any]]:
    """The sealed versions a pattern could name that this reader cannot open, per role
    they are sealed for: `[{"sealed_for": ROLE, "versions": N}]` (for "N versions sealed
    for ROLE may match and are not shown")."""
    return [
        {"sealed_for": role, "versions": count}
        for role, count in context.hidden_for(pattern).items()
    ]
