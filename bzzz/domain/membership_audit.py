"""Membership as `bzzz audit` checks it: the store's membership must follow from the
cluster's one founding entry, and the store must hold no log of a key that never was a
member. A store of no cluster (no founding entry at all) is a plain log store and has
no membership to check."""

from __future__ import annotations

from collections.abc import Iterable

from bzzz.domain import membership as ms
from bzzz.domain.audit_rules import Finding
from bzzz.domain.roles import Roles


def audit_membership(
    acts: list[ms.MembershipAct],
    roles: Roles,
    founding: bytes | None,
    authors: Iterable[bytes],
) -> list[Finding]:
    """`acts`: every membership entry the store holds; `founding`: the cluster id the
    node is configured with (None: the only founding entry, if there is one);
    `authors`: every log the store holds."""
    foundings = [a for a in acts if a.kind == ms.FOUNDED]
    if founding is None and not foundings:
        return []
    state = ms.fold_membership(acts, roles, founding)
    findings: list[Finding] = []
    if founding is not None and state.cluster_id != founding:
        findings.append(
            Finding(
                None,
                None,
                "no-founding",
                f"the store does not hold a valid founding entry {founding.hex()[:12]}, "
                "the cluster id this node is configured with: membership cannot follow",
            )
        )
    for act, why in state.ignored:
        if why in (ms.NOT_OURS, ms.NO_ANCHOR):
            name = ms.founded_name(act.body) or "?"
            findings.append(
                Finding(
                    act.author.hex(),
                    act.seq,
                    "foreign-founding",
                    f"a founding entry {act.hash.hex()[:12]} (cluster name {name!r}) that is {why}",
                )
            )
    if state.cluster_id is None:
        return findings
    for author in sorted(set(authors)):
        if not state.ever_member(author):
            findings.append(
                Finding(
                    author.hex(),
                    None,
                    "not-member",
                    f"a log of a key that is not and never was a member of cluster "
                    f"{state.cluster!r} ({state.cluster_id.hex()[:12]}); it does not "
                    "belong in this store",
                )
            )
    return findings
