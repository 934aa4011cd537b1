"""SLURP, the admin's curation of context (`bzzz.domain.slurp`), pure: which acts are
due, which recorded acts count (the proven leader of their term only), how they show
on the versions, and that a new admin does not repeat the old one's acts."""

from __future__ import annotations

from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import context as cx
from bzzz.domain import slurp as sl
from bzzz.domain import ucxl
from bzzz.domain.payload import encode_payload
from bzzz.domain.sealing import OPEN, Envelope, Opened, envelope_body

ARCH, ARCH2, ADMIN1, ADMIN2, ROGUE = (bytes([n]) * 32 for n in range(1, 6))
ROLES = {ARCH: "architect", ARCH2: "architect", ADMIN1: "admin", ADMIN2: "admin"}
DECIDERS = frozenset({"architect", "admin"})
TASK, OTHER = "local:login", "local:other"
LEADERS = {1: ADMIN1, 2: ADMIN2}
ENDS = {1: 100}  # term 2 was proven at Lamport 100


def decision(author: bytes, seq: int, path: str = "auth.md", task: str = TASK) -> cx.ContextEntry:
    body = encode_payload({"task": task, "path": [path], "text": f"v{seq}"})
    return cx.ContextEntry(author, seq, seq * 1000, cx.DECISION, _hash(author, seq), body)


def _hash(author: bytes, seq: int) -> bytes:
    return bytes([author[0], seq]) * 16


def fold(*entries: cx.ContextEntry) -> cx.Context:
    return cx.fold_context(entries, ROLES, "acme", DECIDERS)


def acts_of(
    owed: list[sl.Due], author: bytes, term: int, lamport: int, first_seq: int = 1
) -> list[sl.ActEntry]:
    """The entries an admin writes for what it owes."""
    return [
        sl.ActEntry(
            author,
            first_seq + n,
            lamport + n,
            due.kind,
            bytes([author[0], 200 + n % 50, term]) * 10 + bytes(2),
            encode_payload(due.body(term)),
        )
        for n, due in enumerate(owed)
    ]


def act(
    kind: str, author: bytes = ADMIN1, seq: int = 1, lamport: int = 10, **body: Any
) -> sl.ActEntry:
    return sl.ActEntry(author, seq, lamport, kind, bytes([seq, author[0]]) * 16, cbor2.dumps(body))


V1, V2, V3 = (_hash(ARCH, n) for n in (1, 2, 3))
THREE = (decision(ARCH, 1), decision(ARCH, 2), decision(ARCH, 3))


def test_a_decision_is_linked_to_its_task_and_thread_only_when_they_exist() -> None:
    context = fold(decision(ARCH, 1))
    empty = sl.Curation()
    assert sl.due(context, empty, tasks=set(), threads=set()) == []
    assert sl.due(context, empty, {TASK}, set()) == [sl.Due(sl.LINKED, V1, TASK, None)]
    assert sl.due(context, empty, {TASK}, {TASK}) == [sl.Due(sl.LINKED, V1, TASK, TASK)]
    assert sl.due(context, empty, {OTHER}, {OTHER}) == []


def test_each_older_version_is_superseded_by_the_next() -> None:
    owed = sl.due(fold(*THREE), sl.Curation(), set(), set())
    assert owed == [sl.Due(sl.SUPERSEDED, V1, by=V2), sl.Due(sl.SUPERSEDED, V2, by=V3)]


def test_only_decisions_at_the_same_address_supersede_each_other() -> None:
    context = fold(
        decision(ARCH, 1, "a.md"),
        decision(ARCH, 2, "b.md"),
        decision(ARCH2, 1, "a.md"),  # another author: another address
    )
    assert sl.due(context, sl.Curation(), set(), set()) == []


def test_recorded_acts_show_on_the_versions_and_are_not_due_again() -> None:
    context = fold(*THREE)
    owed = sl.due(context, sl.Curation(), {TASK}, {TASK})
    assert len(owed) == 5  # three links, two supersessions
    curation = sl.fold_acts(acts_of(owed, ADMIN1, 1, 10), LEADERS, ENDS, context)
    assert curation.counted == 5 and not curation.ignored
    assert sl.due(context, curation, {TASK}, {TASK}) == []
    curated = sl.curate(context, curation)
    item = curated.items()[0]
    assert [v.superseded_by for v in item.versions] == [V2, V3, None]
    assert all(v.links == (cx.Link(TASK, TASK),) for v in item.versions)


def test_a_new_admin_does_not_repeat_the_old_ones_acts() -> None:
    # Admin 1 (term 1) curated two versions; the third came after it stopped.
    context = fold(*THREE[:2])
    first = sl.due(context, sl.Curation(), {TASK}, set())
    recorded = acts_of(first, ADMIN1, 1, 10)
    context = fold(*THREE)
    curation = sl.fold_acts(recorded, LEADERS, ENDS, context)
    owed = sl.due(context, curation, {TASK}, set())
    assert owed == [sl.Due(sl.SUPERSEDED, V2, by=V3), sl.Due(sl.LINKED, V3, TASK, None)]
    # Admin 2 (term 2) writes only those; then nothing is owed, whoever looks.
    recorded += acts_of(owed, ADMIN2, 2, 200)
    curation = sl.fold_acts(recorded, LEADERS, ENDS, context)
    assert curation.counted == 5 and sl.due(context, curation, {TASK}, set()) == []


def test_a_thread_that_appears_later_is_linked_then() -> None:
    context = fold(decision(ARCH, 1))
    recorded = acts_of(sl.due(context, sl.Curation(), {TASK}, set()), ADMIN1, 1, 10)
    curation = sl.fold_acts(recorded, LEADERS, ENDS, context)
    owed = sl.due(context, curation, {TASK}, {TASK})
    assert owed == [sl.Due(sl.LINKED, V1, TASK, TASK)]
    recorded += acts_of(owed, ADMIN1, 1, 20, first_seq=5)
    curation = sl.fold_acts(recorded, LEADERS, ENDS, context)
    shown = sl.curate(context, curation).items()[0].versions[0]
    assert shown.links == (cx.Link(TASK, TASK),)  # the narrower link is covered


def test_acts_not_by_the_proven_leader_of_their_term_are_ignored() -> None:
    context = fold(*THREE[:2])
    owed = sl.due(context, sl.Curation(), set(), set())
    for author, term, lamport in [(ROGUE, 1, 10), (ADMIN2, 1, 10), (ADMIN1, 3, 10)]:
        curation = sl.fold_acts(acts_of(owed, author, term, lamport), LEADERS, ENDS, context)
        assert curation.counted == 0 and "proven leader" in curation.ignored[0][2]
        assert sl.due(context, curation, set(), set()) == owed  # still owed
    late = sl.fold_acts(acts_of(owed, ADMIN1, 1, 150), LEADERS, ENDS, context)
    assert late.counted == 0 and "newer term" in late.ignored[0][2]


def test_acts_must_fit_the_context_they_curate() -> None:
    context = fold(*THREE, decision(ARCH, 4, "other.md"))
    v4 = _hash(ARCH, 4)
    unknown = b"\x77" * 32
    cases = [
        (act(sl.SUPERSEDED, term=1, version=V2, by=V1), "later decision version"),
        (act(sl.SUPERSEDED, term=1, version=V1, by=v4), "same address"),
        (act(sl.SUPERSEDED, term=1, version=unknown, by=V2), "no decision version"),
        (act(sl.SUPERSEDED, term=1, version=V1, by=unknown), "by: version"),
        (act(sl.LINKED, term=1, version=V1, task=OTHER, thread=None), "its own task"),
        (act(sl.LINKED, term=1, version=V1, task=None, thread=OTHER), "its own task"),
    ]
    for entry, why in cases:
        curation = sl.fold_acts([entry], LEADERS, ENDS, context)
        assert curation.counted == 0 and why in curation.ignored[0][2], (entry, curation)


def test_a_version_superseded_once_stays_superseded_by_that_version() -> None:
    context = fold(*THREE)
    first = act(sl.SUPERSEDED, seq=1, lamport=10, term=1, version=V1, by=V3)
    second = act(sl.SUPERSEDED, seq=2, lamport=11, term=1, version=V1, by=V2)
    curation = sl.fold_acts([second, first], LEADERS, ENDS, context)  # any order
    assert curation.superseded == {V1: V3}
    assert "already superseded" in curation.ignored[0][2]


def test_sealed_decisions_are_not_curated() -> None:
    envelope = Envelope("architect", 1, "age1x", b"ciphertext")
    body = encode_payload(envelope_body(envelope))
    hidden = cx.ContextEntry(ARCH, 2, 2000, cx.DECISION, V2, body)
    context = fold(decision(ARCH, 1), hidden, decision(ARCH, 3))
    # Unreadable here: hidden, so v1 is followed by v3 (both plain).
    assert sl.due(context, sl.Curation(), set(), set()) == [sl.Due(sl.SUPERSEDED, V1, by=V3)]

    def opened(entry: cx.ContextEntry) -> Opened:
        return Opened(OPEN, {"task": TASK, "path": ["auth.md"], "text": "s"}, "architect", 1)

    readable = cx.fold_context(
        (decision(ARCH, 1), hidden, decision(ARCH, 3)), ROLES, "acme", DECIDERS, opened
    )
    assert [v.sealed_for for v in readable.items()[0].versions] == [None, "architect", None]
    assert sl.due(readable, sl.Curation(), {TASK}, set()) == [
        sl.Due(sl.LINKED, V1, TASK, None),
        sl.Due(sl.SUPERSEDED, V1, by=V3),
        sl.Due(sl.LINKED, V3, TASK, None),
    ]
    naming_sealed = act(sl.LINKED, term=1, version=V2, task=TASK, thread=None)
    curation = sl.fold_acts([naming_sealed], LEADERS, ENDS, readable)
    assert curation.counted == 0 and "sealed" in curation.ignored[0][2]


def test_the_audit_finds_malformed_acts_and_acts_of_others() -> None:
    entries = [
        act(sl.LINKED, seq=1, term=1, version=V1, task=TASK, thread=None),
        act(sl.LINKED, ROGUE, seq=1, term=1, version=V1, task=TASK, thread=None),
        act(sl.SUPERSEDED, seq=2, term=1, version=V1),
        act(sl.LINKED, ROGUE, seq=2, term=9, version=V1, task=TASK, thread=None),
    ]
    findings = sl.audit_acts(entries, LEADERS, ENDS)
    assert [f.code for f in findings] == ["slurp-malformed", "slurp-not-admin", "slurp-not-admin"]
    pending = sl.audit_acts(entries, LEADERS, ENDS, proofs_pending=True)
    assert [f.code for f in pending] == ["slurp-malformed", "slurp-not-admin"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([*sl.KINDS, "context.put"]),
    st.one_of(
        st.binary(max_size=80),
        st.dictionaries(
            st.sampled_from(["term", "version", "by", "task", "thread", "x"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=20),
                st.sampled_from([TASK, "x:" + "a" * 16, V1, V2, V3, b"\x00" * 32]),
                st.binary(max_size=40),
                st.lists(st.integers(), max_size=2),
            ),
            max_size=5,
        ).map(lambda d: cbor2.dumps(d)),
    ),
    st.sampled_from([ADMIN1, ADMIN2, ROGUE]),
)
def test_hostile_acts_never_raise(kind: str, body: bytes, author: bytes) -> None:
    context = fold(*THREE)
    entry = sl.ActEntry(author, 1, 5, kind, b"\x42" * 32, body)
    curation = sl.fold_acts([entry], LEADERS, ENDS, context)
    assert isinstance(sl.parse_act(entry), sl.Act | str)
    sl.curate(context, curation)
    sl.due(context, curation, {TASK}, {TASK})
    sl.audit_acts([entry], LEADERS, ENDS)


def test_due_bodies_are_what_parse_reads_back() -> None:
    for due in (sl.Due(sl.LINKED, V1, TASK, None), sl.Due(sl.SUPERSEDED, V1, by=V2)):
        entry = sl.ActEntry(ADMIN1, 1, 1, due.kind, b"\x01" * 32, encode_payload(due.body(7)))
        parsed = sl.parse_act(entry)
        assert isinstance(parsed, sl.Act)
        assert (parsed.term, parsed.version, parsed.task, parsed.by) == (
            7,
            V1,
            due.task,
            due.by,
        )


def test_a_pattern_address_still_matches_curated_items() -> None:
    context = sl.curate(fold(*THREE), sl.Curation())
    found = context.search(ucxl.parse("ucxl://*:architect@acme:*/~latest/decisions"))
    assert [v.number for _, v in found] == [3]
