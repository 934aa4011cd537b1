"""Leadership as `bzzz audit` checks it, from the logs alone: every `election.leader`
entry must cite votes of a majority of the voters of its time, for its leader and term;
no term may have two proven leaders; no voter may vote twice in a term."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bzzz.domain import leadership as lead
from bzzz.domain import membership as ms
from bzzz.domain.audit_rules import Finding
from bzzz.domain.entry import Entry
from bzzz.domain.roles import Roles

KINDS = (*lead.KINDS, *ms.KINDS)


@dataclass
class LeadershipAudit:
    proof: lead.Leadership
    findings: list[Finding] = field(default_factory=list)
    waiting: int = 0  # claims citing votes this store does not hold yet

    def summary(self) -> dict[str, object]:
        latest = self.proof.latest
        return {
            "proven_terms": len(self.proof.proven),
            "latest_term": latest.term if latest else None,
            "latest_leader": latest.leader.hex() if latest else None,
            "waiting_for_votes": self.waiting,
        }


def audit_leadership(entries: Iterable[Entry], roles: Roles) -> LeadershipAudit:
    """`entries`: at least every entry of `KINDS` the store holds, in any order."""
    votes: list[lead.Vote] = []
    claims: list[lead.LeaderClaim] = []
    acts: list[ms.MembershipAct] = []
    claim_seq: dict[tuple[bytes, int, int], int] = {}
    for e in entries:
        if e.kind == lead.VOTE:
            vote = lead.parse_vote(e.author, e.body, e.hash, e.ts)
            votes += [vote] if vote else []
        elif e.kind == lead.LEADER:
            claim = lead.parse_leader(e.author, e.body, e.ts, e.lamport)
            if claim is not None:
                claims.append(claim)
                claim_seq[(claim.leader, claim.term, claim.ts)] = e.seq
        elif e.kind in ms.KINDS:
            acts.append(ms.MembershipAct.of(e))
    history = ms.voter_history(acts, roles)
    proof = lead.prove_leadership(votes, claims, lambda c: ms.voters_at(history, c.lamport))
    result = LeadershipAudit(proof)
    for term, leaders in sorted(proof.split_brain.items()):
        names = ", ".join(sorted(x.hex()[:12] for x in leaders))
        result.findings.append(
            Finding(
                None, None, "split-brain", f"term {term} has {len(leaders)} proven leaders: {names}"
            )
        )
    for voter, term in sorted(set(proof.double_votes)):
        result.findings.append(
            Finding(voter.hex(), None, "double-vote", f"voted for two candidates in term {term}")
        )
    for claim, problem in proof.unproven:
        if problem == lead.MISSING_VOTE:
            result.waiting += 1
            continue
        seq = claim_seq.get((claim.leader, claim.term, claim.ts))
        result.findings.append(
            Finding(claim.leader.hex(), seq, "unproven-leader", f"term {claim.term}: {problem}")
        )
    return result
