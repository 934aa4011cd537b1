"""Leadership checked from the logs alone, as `bzzz audit` does: the pure rules, then a
store written by real daemons."""

from __future__ import annotations

from bzzz.domain import leadership as lead
from bzzz.domain import membership as ms
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import secret_hash
from bzzz.domain.leadership_audit import audit_leadership
from bzzz.home.roles import load_roles
from tests.conftest import make_signer
from tests.support.logs import Logs

ROLES = load_roles(None)
A, B, C, D = (make_signer(n) for n in (1, 2, 3, 4))


def cluster(*members: Ed25519Signer) -> Logs:
    logs = Logs()
    logs.add(A, ms.FOUNDED, ms.founded_body("c", "a", "admin"))
    for n, member in enumerate(members):
        secret = secret_hash(bytes([n]) * 16)
        logs.add(A, ms.INVITED, ms.invited_body(secret, "developer", 10**12))
        logs.add(A, ms.ADMITTED, ms.admitted_body(member.public_key, f"m{n}", "developer", secret))
    return logs


def codes(logs: Logs) -> list[str]:
    return [f.code for f in audit_leadership(logs.entries, ROLES).findings]


def test_a_leader_backed_by_a_majority_is_proven_and_clean() -> None:
    logs = cluster(B, C)
    logs.lead(A, 1, [logs.vote(A, 1, A), logs.vote(B, 1, A)])
    checked = audit_leadership(logs.entries, ROLES)
    assert checked.findings == []
    assert checked.summary()["proven_terms"] == 1
    assert checked.summary()["latest_leader"] == A.public_key.hex()


def test_too_few_votes_or_votes_for_someone_else_are_unproven_leaders() -> None:
    logs = cluster(B, C)
    logs.lead(A, 1, [logs.vote(A, 1, A)])
    assert codes(logs) == ["unproven-leader"]
    logs = cluster(B, C)
    logs.lead(A, 2, [logs.vote(A, 2, A), logs.vote(B, 2, C)])
    (finding,) = audit_leadership(logs.entries, ROLES).findings
    assert finding.code == "unproven-leader" and finding.author == A.public_key.hex()
    assert "another term or candidate" in finding.problem and finding.seq is not None


def test_split_brain_and_double_votes_are_findings() -> None:
    logs = cluster(B, C)
    first = [logs.vote(A, 3, A), logs.vote(B, 3, A)]
    second = [logs.vote(C, 3, C), logs.vote(B, 3, C)]  # B votes twice in term 3
    logs.lead(A, 3, first)
    logs.lead(C, 3, second)
    assert sorted(codes(logs)) == ["double-vote", "split-brain"]


def test_votes_not_here_yet_are_a_wait_not_a_finding() -> None:
    logs = cluster(B, C)
    votes = [logs.vote(A, 1, A), logs.vote(B, 1, A)]
    logs.lead(A, 1, votes)
    logs.entries.remove(votes[1])  # B's log has not replicated this far
    checked = audit_leadership(logs.entries, ROLES)
    assert checked.findings == [] and checked.waiting == 1


def test_each_claim_is_judged_by_the_voters_of_its_time() -> None:
    logs = cluster(B, C)
    logs.lead(A, 1, [logs.vote(A, 1, A), logs.vote(B, 1, A)])
    # Later D joins and B leaves: term 1 still had 3 voters and 2 of their votes.
    logs.invite(A, D, "d")
    logs.add(A, ms.REMOVED, ms.removed_body(B.public_key, "left"))
    logs.lead(C, 2, [logs.vote(C, 2, C), logs.vote(D, 2, C)])
    checked = audit_leadership(logs.entries, ROLES)
    assert checked.findings == [] and checked.summary()["proven_terms"] == 2
    # With B gone, its vote no longer counts for a later claim.
    logs.lead(B, 3, [logs.vote(B, 3, B), logs.vote(A, 3, B)])
    assert codes(logs) == ["unproven-leader"]


def test_a_leader_that_had_not_heard_of_a_newcomer_is_judged_by_the_voters_it_knew() -> None:
    # A admits D while B, which has not received that yet, wins term 1 with 2 of the 3
    # voters it knows. B's entry has the higher Lamport time (it wrote more), so a
    # Lamport cut would count D among its voters; the cut B names does not.
    logs = cluster(B, C)
    before = list(logs.entries)
    logs.invite(A, D, "d")
    votes = [logs.vote(B, 1, B), logs.vote(C, 1, B)]
    logs.lead(B, 1, votes, seen=before + votes)
    checked = audit_leadership(logs.entries, ROLES)
    assert checked.findings == [] and checked.summary()["latest_leader"] == B.public_key.hex()
    # The same claim without a named cut (as older entries are) is judged by Lamport
    # time, where D was already a voter: 2 of 4 is not a majority.
    claim = logs.entries.pop()
    old = {"term": 1, "votes": [v.hash for v in votes], "trigger": "no-leader", "leaderless_ms": 0}
    logs.tips[B.public_key] = (claim.seq - 1, claim.prev)
    logs.add(B, lead.LEADER, old)
    (finding,) = audit_leadership(logs.entries, ROLES).findings
    assert finding.code == "unproven-leader" and "2 of 4 voters" in finding.problem


def test_a_leader_may_not_name_less_of_the_membership_than_it_named_before() -> None:
    logs = cluster(B, C)
    before = list(logs.entries)
    logs.invite(A, D, "d")
    logs.lead(A, 1, [logs.vote(A, 1, A), logs.vote(B, 1, A), logs.vote(C, 1, A)])  # 3 of 4
    # Then it names a cut without D, where 2 of 3 would do.
    logs.lead(A, 2, [logs.vote(A, 2, A), logs.vote(B, 2, A)], seen=before)
    (finding,) = audit_leadership(logs.entries, ROLES).findings
    assert finding.code == "unproven-leader" and finding.seq == logs.entries[-1].seq
    assert (
        finding.problem
        == "term 2: counts its voters in a membership older than its earlier claim's"
    )


def test_a_named_membership_entry_not_here_yet_is_a_wait() -> None:
    logs = cluster(B, C)
    admitted = logs.invite(A, D, "d")
    logs.lead(B, 1, [logs.vote(B, 1, B), logs.vote(C, 1, B), logs.vote(D, 1, B)])
    logs.entries.remove(admitted)  # A's log has not replicated this far
    checked = audit_leadership(logs.entries, ROLES)
    assert checked.findings == [] and checked.waiting == 1
