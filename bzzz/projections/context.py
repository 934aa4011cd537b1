"""The shared context a store holds, by UCXL address (`bzzz.domain.context`), read from
its entries on demand: for `bzzz ucxl`, `bzzz decide` and the control socket's
`ucxl_search`/`ucxl_history` (and, later, the UCXI server); `version_json` is the JSON
all of them answer with."""

from __future__ import annotations

from typing import Any

from bzzz.domain import ucxl
from bzzz.domain.context import KINDS, Context, ContextEntry, Item, Version, fold_context
from bzzz.domain.roles import Roles, can_make_decisions
from bzzz.projections.membership import read_membership
from bzzz.projections.reading import entries_of_kinds
from bzzz.store import EventStore


def context_entries(store: EventStore) -> list[ContextEntry]:
    """Every entry of a kind that may be context (damaged rows skipped: the audit
    reports them)."""
    return [
        ContextEntry(e.author, e.seq, e.ts, e.kind, e.hash, e.body)
        for _, e in entries_of_kinds(store, KINDS)
    ]


def read_context(
    store: EventStore, roles: Roles, cluster_id: bytes | None, project: str
) -> Context:
    """The context of the cluster whose founding entry is `cluster_id`: entries of its
    members (past members too, in the role they had when removed)."""
    membership = read_membership(store, roles, cluster_id)
    roles_of = {key: m.role for key, m in membership.removed.items()}
    roles_of.update({key: m.role for key, m in membership.members.items()})
    deciding = frozenset(r.name for r in roles.by_name.values() if can_make_decisions(r))
    return fold_context(context_entries(store), roles_of, project, deciding)


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
    }
