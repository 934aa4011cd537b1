"""Claim rules: the leader's decisions, fencing tokens, leases, terms and re-issues."""

from __future__ import annotations

import itertools

from bzzz.domain import claims as cl
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import Authority, Role

L1, L2, X, Y = (bytes([n]) * 32 for n in (1, 2, 3, 4))
DEV = Role("developer", Authority.COORDINATION, capabilities=("python",))
WATCHER = Role("observer", Authority.READ_ONLY, votes=False)
_clock = itertools.count(1)


def entry(author: bytes, kind: str, ts: int = 0, **data: object) -> cl.ClaimEntry:
    n = next(_clock)
    return cl.ClaimEntry(author, kind, encode_payload(data), n.to_bytes(32, "big"), ts, n)


def grant_entry(
    leader: bytes, task: str, who: bytes, token: cl.Token, ts: int = 0, lease: int = 1000
) -> cl.ClaimEntry:
    grant = cl.Grant(leader, task, who, token, lease, None, ts)
    return entry(leader, cl.GRANTED, ts, **cl.grant_bodies([grant])[0])


def test_the_leader_grants_once_and_says_why_it_refuses() -> None:
    asks = [entry(X, cl.REQUESTED, task="#1"), entry(Y, cl.REQUESTED, task="#1")]
    book = cl.fold_claims(asks, {1: L1}, 1)
    first, second = book.pending()
    answer = cl.decide(book, first, leader=L1, term=1, now=10, max_tasks=2, role=DEV)
    assert isinstance(answer, cl.Grant) and answer.token == (1, 1)
    book = cl.fold_claims(
        [*asks, entry(L1, cl.GRANTED, 10, **cl.grant_bodies([answer])[0])], {1: L1}, 1
    )
    assert book.pending() == [second]
    refusal = cl.decide(book, second, leader=L1, term=1, now=11, max_tasks=2, role=DEV)
    assert isinstance(refusal, cl.Refusal) and refusal.reason.startswith("already held by 030303")
    other = entry(X, cl.REQUESTED, task="#2")
    busy = cl.decide(
        book,
        cl.fold_claims([other], {}, 1).requests[0],
        leader=L1,
        term=1,
        now=12,
        max_tasks=1,
        role=DEV,
    )
    assert isinstance(busy, cl.Refusal) and "max tasks (1)" in busy.reason
    needs = cl.fold_claims([entry(Y, cl.REQUESTED, task="#3", needs=["rust"])], {}, 1)
    for role, why in ((DEV, "lacks rust"), (WATCHER, "read_only"), (None, "not defined")):
        answer = cl.decide(
            book, needs.requests[0], leader=L1, term=1, now=12, max_tasks=5, role=role
        )
        assert isinstance(answer, cl.Refusal) and why in answer.reason


def test_only_the_terms_proven_leader_grants_and_the_newest_token_wins() -> None:
    book = cl.fold_claims(
        [
            grant_entry(L2, "#1", X, (1, 1)),
            grant_entry(L1, "#1", Y, (1, 2)),
            grant_entry(L1, "#2", X, (1, 1)),
        ],
        {1: L1},
        1,
    )
    assert book.live("#1", 5) is not None and book.live("#1", 5).claimant == Y  # type: ignore[union-attr]
    assert book.ignored and "not a grant by that term's leader" in book.ignored[0][1]
    assert book.check_token("#1", (1, 1), X, 5) is not None
    assert "stale token [1, 1]" in (book.check_token("#1", (1, 1), Y, 5) or "")
    assert book.check_token("#1", (1, 2), Y, 5) is None
    assert book.next_grant(1) == 3 and book.next_grant(2) == 1


def test_a_newer_term_voids_old_grants_until_reissued() -> None:
    old = grant_entry(L1, "#1", X, (1, 1), ts=0, lease=1000)
    book = cl.fold_claims([old], {1: L1, 2: L2}, 2)
    assert book.live("#1", 10) is None  # a late or unknown grant of term 1: void
    (again,) = cl.reissues(book, leader=L2, term=2, now=100)
    assert again.token == (2, 1) and again.claimant == X and again.lease_ms == 900
    book = cl.fold_claims(
        [old, entry(L2, cl.GRANTED, 100, **cl.grant_bodies([again])[0])], {1: L1, 2: L2}, 2
    )
    assert book.live("#1", 500) == book.tasks["#1"].grant
    assert "stale token" in (book.check_token("#1", (1, 1), X, 500) or "")


def test_a_late_grant_of_an_old_term_is_carried_forward_once_unless_a_newer_one_won() -> None:
    """The new leader learns of a grant its predecessor wrote just before it was cut off
    only after re-issuing what it knew and granting more: it carries that grant forward
    then, with the next free number of its term, once; a late old grant of a task it has
    granted meanwhile stays void."""
    leaders = {1: L1, 2: L2}
    known = grant_entry(L1, "#1", X, (1, 1), ts=0, lease=1000)
    late = grant_entry(L1, "#2", Y, (1, 2), ts=10, lease=1000)
    beaten = grant_entry(L1, "#3", X, (1, 3), ts=20, lease=1000)
    book = cl.fold_claims([known], leaders, 2)
    (first,) = cl.reissues(book, leader=L2, term=2, now=100)
    fresh = cl.Grant(L2, "#3", Y, (2, 2), 1000, None, 110)
    cl.apply_claims(
        book,
        [
            entry(L2, cl.GRANTED, 100, **cl.grant_bodies([first])[0]),
            entry(L2, cl.GRANTED, 110, **cl.grant_bodies([fresh])[0]),
        ],
        leaders,
    )
    assert cl.reissues(book, leader=L2, term=2, now=120) == []
    cl.apply_claims(book, [late, beaten], leaders)
    (carried,) = cl.reissues(book, leader=L2, term=2, now=200)
    assert (carried.task, carried.claimant, carried.token) == ("#2", Y, (2, 3))
    assert carried.lease_ms == 810  # what was left of the old lease, not a new one
    cl.apply_claims(book, [entry(L2, cl.GRANTED, 200, **cl.grant_bodies([carried])[0])], leaders)
    assert cl.reissues(book, leader=L2, term=2, now=300) == []
    assert book.live("#3", 300) == fresh and book.live("#2", 300) == carried
    assert "stale token" in (book.check_token("#3", (1, 3), X, 300) or "")


def test_progress_renews_release_ends_and_stale_progress_is_ignored() -> None:
    grant = grant_entry(L1, "#1", X, (1, 2), ts=0, lease=1000)
    renew = entry(X, cl.PROGRESS, 800, **cl.token_body("#1", (1, 2)))
    book = cl.fold_claims([grant, renew], {1: L1}, 1)
    assert book.live("#1", 1500) is not None and book.live("#1", 1800) is None
    forged = entry(Y, cl.PROGRESS, 1700, **cl.token_body("#1", (1, 2)))  # not the holder
    stale = entry(X, cl.PROGRESS, 1700, **cl.token_body("#1", (1, 1)))  # an older token
    book = cl.fold_claims([grant, renew, forged, stale], {1: L1}, 1)
    assert book.live("#1", 1900) is None  # neither renewed it
    assert any("stale or foreign token [1, 1]" in why for _, why in book.ignored)
    release = entry(X, cl.RELEASED, 950, **cl.token_body("#1", (1, 2)))
    book = cl.fold_claims([grant, renew, release], {1: L1}, 1)
    assert book.live("#1", 960) is None and book.tasks["#1"].released
    expired = cl.fold_claims([grant], {1: L1}, 1)
    assert cl.reissues(expired, leader=L2, term=2, now=5000) == []


def test_garbage_claim_entries_are_ignored() -> None:
    junk = [cl.ClaimEntry(X, cl.GRANTED, b"\xff", b"h" * 32, 0, 1), entry(X, cl.REQUESTED)]
    book = cl.fold_claims(junk, {1: L1}, 1)
    assert not book.tasks and not book.requests and len(book.ignored) == 2


def test_applying_entries_in_any_chunks_and_order_gives_the_folded_book() -> None:
    import random

    leaders = {1: L1, 2: L2}
    entries = [
        entry(X, cl.REQUESTED, task="#1"),
        grant_entry(L1, "#1", X, (1, 1), ts=0, lease=5000),
        entry(X, cl.PROGRESS, 3000, **cl.token_body("#1", (1, 1))),
        grant_entry(L2, "#1", Y, (2, 1), ts=4000, lease=5000),
        entry(Y, cl.PROGRESS, 6000, **cl.token_body("#1", (2, 1))),
        grant_entry(L2, "#2", X, (2, 2), ts=4100, lease=5000),
        entry(X, cl.RELEASED, 4200, **cl.token_body("#2", (2, 2))),
    ]
    whole = cl.fold_claims(entries, leaders, 2)
    for seed in range(50):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        book = cl.ClaimBook(2)
        while shuffled:
            cut = random.Random(seed).randint(1, len(shuffled))
            cl.apply_claims(book, shuffled[:cut], leaders)
            shuffled = shuffled[cut:]
        assert book.tasks == whole.tasks and book.answered == whole.answered, seed
    assert whole.live("#1", 10_000) is not None and whole.tasks["#2"].released


def test_one_entry_carries_a_decisions_grants_and_each_is_checked_alone() -> None:
    asks = [entry(who, cl.REQUESTED, task=f"#{n}") for n, who in enumerate((X, Y, X), 1)]
    book = cl.fold_claims(asks, {1: L1}, 1)
    grants = []
    for request in book.pending():
        answer = cl.decide(book, request, leader=L1, term=1, now=10, max_tasks=5, role=DEV)
        assert isinstance(answer, cl.Grant)
        book.hold(answer)
        grants.append(answer)
    (body,) = cl.grant_bodies(grants)
    forged = {**body["grants"][2], "term": 2}  # a term L1 did not lead
    decision = entry(L1, cl.GRANTED, 10, grants=[*body["grants"][:2], forged, {"task": 7}])
    book = cl.fold_claims([*asks, decision], {1: L1, 2: L2}, 1)
    assert {t: c.grant.token for t, c in book.tasks.items()} == {"#1": (1, 1), "#2": (1, 2)}
    assert [r.task for r in book.pending()] == ["#3"]
    assert [why for _, why in book.ignored] == ["#3: not a grant by that term's leader", "no task"]
    for bad in ([], "x", [1], [body["grants"][0]] * (cl.GRANTS_PER_ENTRY + 1)):
        book = cl.fold_claims([entry(L1, cl.GRANTED, 10, grants=bad)], {1: L1}, 1)
        assert not book.tasks and "grants: not a list" in book.ignored[0][1]


def test_grants_are_split_into_entries_that_fit_and_old_single_grant_bodies_still_count() -> None:
    longest = "t" * (cl.MAX_TASK - 3)
    many = [cl.Grant(L1, f"{n:03}{longest}", X, (1, n), 10**9, b"r" * 32, 0) for n in range(1, 251)]
    bodies = cl.grant_bodies(many)
    assert [len(b["grants"]) for b in bodies] == [100, 100, 50]
    assert all(len(encode_payload(b)) < 64 * 1024 for b in bodies)
    assert cl.grant_bodies([]) == []
    single = {"task": "#1", "claimant": X, "term": 1, "grant": 1, "lease_ms": 1000, "request": None}
    book = cl.fold_claims([entry(L1, cl.GRANTED, 0, **single)], {1: L1}, 1)
    assert book.live("#1", 10) is not None
