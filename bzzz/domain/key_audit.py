"""Keys as `bzzz audit` checks them, without any key: every `key.granted` and
`key.split` must come from the proven leader of the term it names (before a newer term
was proven), a grant must go to a key that is or was a member, a share may be released
only by a holder of its split, and a reconstruction may claim success only with enough
released shares. The ceremonies themselves are listed for people to read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import key_ceremony as kc
from bzzz.domain import keys as kk
from bzzz.domain.audit_rules import Finding
from bzzz.domain.entry import Entry
from bzzz.domain.leadership import Leadership

KINDS = (kk.GRANTED, *kc.KINDS)


@dataclass
class KeyAudit:
    findings: list[Finding] = field(default_factory=list)
    ceremonies: list[dict[str, Any]] = field(default_factory=list)
    grants: int = 0  # grants that count


def audit_keys(
    entries: Iterable[Entry],
    proof: Leadership,
    members: Iterable[bytes],
    names: Mapping[bytes, str],
    proofs_pending: bool = False,
) -> KeyAudit:
    """`entries`: at least every key entry the store holds; `members`: every key that
    is or was a member; `proofs_pending`: some leader claims wait for vote entries this
    store does not hold yet, so an admin entry of an unproven term is not judged."""
    leaders = {term: p.leader for term, p in proof.proven.items()}
    ends = proof.ends()
    known = set(members)
    result = KeyAudit()
    grants = []
    held = [e for e in entries if e.kind in KINDS]
    for entry in held:
        if entry.kind != kk.GRANTED:
            continue
        grant = kk.parse_grant(entry)
        if grant is None:
            result.findings.append(
                Finding(entry.author.hex(), entry.seq, "key-malformed", "key.granted: malformed")
            )
            continue
        grants.append(grant)
        if grant.to is not None and grant.to not in known:
            result.findings.append(
                Finding(
                    entry.author.hex(),
                    entry.seq,
                    "key-not-member",
                    f"key.granted: a {grant.role} key granted to {grant.to.hex()[:12]}, "
                    "a key that never was a member",
                )
            )
    book = kk.fold_grants(grants, leaders, ends)
    result.grants = len(book.grants)
    for grant, why in book.ignored:
        if proofs_pending and grant.term not in leaders:
            continue
        code = "key-conflict" if "already a key" in why else "key-not-admin"
        result.findings.append(
            Finding(grant.author.hex(), grant.seq, code, f"key.granted ({grant.role}): {why}")
        )
    ceremonies = kc.fold_ceremonies(held, leaders, ends, known)
    for problem in ceremonies.problems:
        if proofs_pending and problem.code == "key-not-admin":
            continue
        result.findings.append(
            Finding(problem.author.hex(), problem.seq, problem.code, problem.why)
        )
    result.ceremonies = kc.ceremony_json(ceremonies, names)
    return result
