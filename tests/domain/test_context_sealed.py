"""Sealed context in the fold (`bzzz.domain.context`): an opened entry is context like a
plain one, one this reader cannot open is hidden (its address is inside the ciphertext)
and counted per role, a mismatched or damaged one is not context. The opener is a plain
function here: the domain never sees a key."""

from __future__ import annotations

from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import context as cx
from bzzz.domain import hmmm as hm
from bzzz.domain import ucxl
from bzzz.domain.payload import encode_payload
from bzzz.domain.sealing import (
    DAMAGED,
    MISMATCH,
    OPEN,
    SEALED,
    Envelope,
    Opened,
    envelope_body,
    not_open,
    parse_envelope,
)

DEV, ARCH = b"\x01" * 32, b"\x02" * 32
ROLES = {DEV: "developer", ARCH: "architect"}
DECIDERS = frozenset({"architect"})
TASK = "github:acme/api#12"


def sealed(author: bytes, seq: int, kind: str, role: str, **payload: Any) -> cx.ContextEntry:
    """A sealed entry; its "ciphertext" is the CBOR of the payload (the test's opener
    reads it back, standing in for a keyring)."""
    envelope = Envelope(role, 1, "age1test", cbor2.dumps(payload))
    body = encode_payload(envelope_body(envelope))
    return cx.ContextEntry(author, seq, seq * 1000, kind, bytes([seq, author[0]]) * 16, body)


def plain(author: bytes, seq: int, kind: str, **payload: Any) -> cx.ContextEntry:
    return cx.ContextEntry(
        author, seq, seq * 1000, kind, bytes([seq, author[0]]) * 16, encode_payload(payload)
    )


def opener_for(*held: str, state: str = OPEN) -> cx.Opener:
    """A reader holding the keys of `held`; `state` for what those open to."""

    def open_(entry: cx.ContextEntry) -> Opened:
        envelope = parse_envelope(entry.body)
        assert envelope is not None
        if envelope.role not in held:
            return not_open(SEALED, envelope)
        if state != OPEN:
            return not_open(state, envelope, "test")
        return Opened(OPEN, cbor2.loads(envelope.ciphertext), envelope.role, 1)

    return open_


def at(author: bytes, role: str, path: str, task: str = TASK) -> ucxl.Address:
    return ucxl.Address(author.hex(), role, "acme", task, ucxl.LATEST, tuple(path.split("/")))


def fold(*entries: cx.ContextEntry, opener: cx.Opener | None = None) -> cx.Context:
    return cx.fold_context(entries, ROLES, "acme", DECIDERS, opener)


SECRET_PUT = dict(task=TASK, path=["secret.md"], text="the secret")


def test_an_opened_entry_is_context_like_a_plain_one() -> None:
    context = fold(
        plain(DEV, 1, cx.PUT, task=TASK, path=["secret.md"], text="public"),
        sealed(DEV, 2, cx.PUT, "developer", **SECRET_PUT),
        opener=opener_for("developer"),
    )
    item = context.history(at(DEV, "developer", "secret.md"))
    assert item is not None
    assert [(v.number, v.text, v.sealed_for, v.readable) for v in item.versions] == [
        (1, "public", None, True),
        (2, "the secret", "developer", True),
    ]
    assert not context.hidden and not context.ignored


def test_without_a_key_the_version_is_hidden_and_its_address_stays_secret() -> None:
    for opener in (None, opener_for("architect")):
        context = fold(sealed(DEV, 1, cx.PUT, "developer", **SECRET_PUT), opener=opener)
        assert not context.items() and not context.ignored
        [hidden] = context.hidden
        assert hidden.version.sealed_for == "developer"
        assert not hidden.version.readable and hidden.version.text == ""
        assert hidden.role == "developer" and hidden.version.author == DEV
        assert "secret" not in repr(hidden)  # neither the text nor the path


def test_hidden_versions_are_counted_per_role_for_a_pattern() -> None:
    context = fold(
        sealed(DEV, 1, cx.PUT, "developer", **SECRET_PUT),
        sealed(DEV, 2, cx.PUT, "architect", **SECRET_PUT),
        sealed(ARCH, 1, cx.DECISION, "architect", task=TASK, path=["a.md"], text="x"),
        sealed(DEV, 3, hm.PLAN, "developer", thread=TASK, text="plan"),
    )
    everything = ucxl.parse("ucxl://*:*@acme:*/~latest")
    assert context.hidden_for(everything) == {"architect": 2, "developer": 2}
    devs = ucxl.parse(f"ucxl://{DEV.hex()[:8]}:developer@acme:*/~latest")
    assert context.hidden_for(devs) == {"architect": 1, "developer": 2}
    # The kind tells some of the path: a decision's begins with decisions/, a plan's is plan.
    decisions = ucxl.parse("ucxl://*:*@acme:*/~latest/decisions")
    assert context.hidden_for(decisions) == {"architect": 2, "developer": 1}
    plans = ucxl.parse("ucxl://*:*@acme:*/~latest/plan")
    assert context.hidden_for(plans) == {"architect": 1, "developer": 2}
    below_plan = ucxl.parse("ucxl://*:*@acme:*/~latest/plan/x")
    assert context.hidden_for(below_plan) == {"architect": 1, "developer": 1}
    assert context.hidden_for(ucxl.parse("ucxl://*:*@other:*/~latest")) == {}


def test_mismatched_and_damaged_entries_are_not_context() -> None:
    for state in (MISMATCH, DAMAGED):
        context = fold(
            sealed(DEV, 1, cx.PUT, "developer", **SECRET_PUT),
            opener=opener_for("developer", state=state),
        )
        assert not context.items() and not context.hidden
        [(_, _, why)] = context.ignored
        assert why.startswith("sealed for developer,") and "test" in why


def test_a_sealed_decision_still_needs_a_deciding_role() -> None:
    entries = (sealed(DEV, 1, cx.DECISION, "developer", task=TASK, path=["a.md"], text="x"),)
    for opener in (None, opener_for("developer")):
        context = fold(*entries, opener=opener)
        assert not context.items() and not context.hidden
        assert [why for _, _, why in context.ignored] == [
            "its author's role may not make decisions"
        ]


def test_an_opened_decision_lives_under_decisions() -> None:
    context = fold(
        sealed(ARCH, 1, cx.DECISION, "architect", task=TASK, path=["auth.md"], text="tokens"),
        opener=opener_for("architect"),
    )
    found = context.get(at(ARCH, "architect", "decisions/auth.md"))
    assert found is not None and found[1].text == "tokens" and found[1].sealed_for == "architect"


def test_an_opened_payload_that_does_not_fit_is_ignored_with_a_reason() -> None:
    context = fold(
        sealed(DEV, 1, cx.PUT, "developer", task=TASK, path="not a list", text="x"),
        opener=opener_for("developer"),
    )
    assert [why for _, _, why in context.ignored] == ["path: a list of segments"]


def test_an_entry_of_a_non_member_is_ignored_before_it_is_opened() -> None:
    def never(entry: cx.ContextEntry) -> Opened:
        raise AssertionError("opened")

    outsider = sealed(b"\x09" * 32, 1, cx.PUT, "developer", **SECRET_PUT)
    context = fold(outsider, opener=never)
    assert [why for _, _, why in context.ignored] == ["its author is not a member"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(cx.KINDS),
    st.dictionaries(
        st.sampled_from(["task", "path", "text", "thread", "files", "result", "x"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=30),
            st.binary(max_size=10),
            st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
        ),
        max_size=5,
    ),
    st.sampled_from([OPEN, SEALED, MISMATCH, DAMAGED]),
)
def test_hostile_sealed_payloads_never_raise(
    kind: str, payload: dict[str, Any], state: str
) -> None:
    context = fold(
        sealed(ARCH, 1, kind, "architect", **payload),
        opener=opener_for("architect", state=state),
    )
    assert len(context.items()) + len(context.hidden) + len(context.ignored) <= 1
