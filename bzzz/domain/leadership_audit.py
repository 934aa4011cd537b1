"""Leadership as `bzzz audit` checks it, from the logs alone: every `election.leader`
entry must cite votes of a majority of the voters of the membership it names (or, in
older entries that name none, of its Lamport time), for its leader and term;
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


def audit_leadership(
    entries: Iterable[Entry], roles: Roles, founding: bytes | None = None
) -> LeadershipAudit:
    """`entries`: at least every entry of `KINDS` the store holds, in any order;
    `founding`: the cluster id (see `membership.fold_membership`)."""
    votes: list[lead.Vote] = []
    claims: list[lead.LeaderClaim] = []
    acts: list[ms.MembershipAct] = []
    for e in entries:
        if e.kind == lead.VOTE:
            vote = lead.parse_vote(e.author, e.body, e.hash, e.ts)
            votes += [vote] if vote else []
        elif e.kind == lead.LEADER:
            claim = lead.parse_leader(e.author, e.body, e.ts, e.lamport, e.seq)
            claims += [claim] if claim else []
        elif e.kind in ms.KINDS:
            acts.append(ms.MembershipAct.of(e))
    electorates = _Electorates(acts, roles, founding)
    judged: list[lead.LeaderClaim] = []
    unjudged: list[tuple[lead.LeaderClaim, str]] = []
    waiting = 0
    for claim in sorted(claims, key=lambda c: (c.leader, c.seq)):
        problem = electorates.check(claim)
        if problem == MISSING_ACT:
            waiting += 1
        elif problem is not None:
            unjudged.append((claim, problem))
        else:
            judged.append(claim)
    proof = lead.prove_leadership(votes, judged, electorates.voters)
    result = LeadershipAudit(proof, waiting=waiting)
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
    for claim, problem in unjudged + proof.unproven:
        if problem == lead.MISSING_VOTE:
            result.waiting += 1
            continue
        result.findings.append(
            Finding(
                claim.leader.hex(), claim.seq, "unproven-leader", f"term {claim.term}: {problem}"
            )
        )
    return result


MISSING_ACT = "names a membership entry this store does not hold"


class _Electorates:
    """The voters each claim is judged by: those of the membership cut it names, or,
    for a claim that names none, those of the acts with a lower Lamport time."""

    def __init__(self, acts: list[ms.MembershipAct], roles: Roles, founding: bytes | None):
        self.acts, self.roles = acts, roles
        self.founding = ms.founding_of(acts, founding)
        self.held = {(a.author, a.seq) for a in acts}
        self.history = ms.voter_history(acts, roles, self.founding)
        self._folded: dict[tuple[tuple[bytes, int], ...], frozenset[bytes]] = {}
        self._named: dict[bytes, dict[bytes, int]] = {}  # per leader, the most it named

    def check(self, claim: lead.LeaderClaim) -> str | None:
        """Why the claim's cut cannot be judged here, if it cannot. Asked in each
        leader's log order: a node's store only grows, so a later claim may not name
        less of any author's log than an earlier one did."""
        if claim.membership is None:
            return None
        cut = dict(claim.membership)
        named = self._named.setdefault(claim.leader, {})
        shrank = any(seq > cut.get(author, 0) for author, seq in named.items())
        for author, seq in cut.items():
            named[author] = max(seq, named.get(author, 0))
        if shrank:
            return "counts its voters in a membership older than its earlier claim's"
        if any(act not in self.held for act in claim.membership):
            return MISSING_ACT  # logs replicate independently: a wait, not evidence
        return None

    def voters(self, claim: lead.LeaderClaim) -> frozenset[bytes]:
        cut = claim.membership
        if cut is None:
            return ms.voters_at(self.history, claim.lamport)
        if cut not in self._folded:
            state = ms.fold_cut(self.acts, dict(cut), self.roles, self.founding)
            self._folded[cut] = ms.voters_of(state, self.roles)
        return self._folded[cut]
