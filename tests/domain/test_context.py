"""Shared context by address (`bzzz.domain.context`): what becomes context, where, and
which version an address names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.domain import context as cx
from bzzz.domain import hmmm as hm
from bzzz.domain import ucxl
from bzzz.domain.payload import encode_payload
from bzzz.domain.task_entries import COMPLETED

DEV, ARCH, OUTSIDER = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
ROLES = {DEV: "developer", ARCH: "architect"}
DECIDERS = frozenset({"architect"})
TASK = "github:acme/api#12"


def entry(author: bytes, seq: int, kind: str, ts: int = 0, **body: object) -> cx.ContextEntry:
    return cx.ContextEntry(
        author, seq, ts or seq * 1000, kind, bytes([seq]) * 32, encode_payload(body)
    )


def fold(*entries: cx.ContextEntry) -> cx.Context:
    return cx.fold_context(entries, ROLES, "acme", DECIDERS)


def at(
    author: bytes, role: str, path: str, temporal: str = "~latest", task: str = TASK
) -> ucxl.Address:
    return ucxl.Address(
        author.hex(),
        role,
        "acme",
        task,
        ucxl.parse(f"ucxl://0000:r@p:t/{temporal}").temporal,
        tuple(path.split("/")),
    )


def test_puts_are_versions_of_one_item_in_log_order() -> None:
    context = fold(
        entry(DEV, 3, cx.PUT, task=TASK, path=["notes.md"], text="third"),
        entry(DEV, 1, cx.PUT, task=TASK, path=["notes.md"], text="first"),
        entry(DEV, 2, cx.PUT, task=TASK, path=["notes.md"], text="second"),
    )
    item = context.history(at(DEV, "developer", "notes.md"))
    assert item is not None
    assert [(v.number, v.text) for v in item.versions] == [
        (1, "first"),
        (2, "second"),
        (3, "third"),
    ]


@pytest.mark.parametrize(
    ("temporal", "text"),
    [
        ("~latest", "third"),
        ("~first", "first"),
        ("~-1", "second"),
        ("~-2", "first"),
        ("~-3", None),
        ("~+1", "second"),
        ("~+3", None),
        ("~v2", "second"),
        ("~v4", None),
        ("~1970-01-01T00:00:02Z", "second"),
        ("~1970-01-01T00:00:00.999Z", None),
    ],
)
def test_a_temporal_segment_names_one_version(temporal: str, text: str | None) -> None:
    context = fold(
        *(
            entry(DEV, n, cx.PUT, task=TASK, path=["n"], text=t)
            for n, t in [(1, "first"), (2, "second"), (3, "third")]
        )
    )
    found = context.get(at(DEV, "developer", "n", temporal))
    assert (found[1].text if found else None) == text


def test_plans_messages_and_results_become_context() -> None:
    context = fold(
        entry(DEV, 1, hm.PLAN, thread=TASK, text="add a cache", files=["api.py"]),
        entry(ARCH, 1, hm.OBJECTION, thread=TASK, reason="not there"),
        entry(
            DEV, 2, COMPLETED, task=TASK, term=3, grant=1, result="done", link="https://x/pull/1"
        ),
    )
    plan = context.get(at(DEV, "developer", "plan"))
    assert plan is not None and plan[1].text == "add a cache\n\nfiles: api.py"
    objection = context.get(at(ARCH, "architect", "discussion"))
    assert objection is not None and objection[1].text == "not there"
    result = context.get(at(DEV, "developer", "result"))
    assert result is not None and result[1].text == "done\nlink: https://x/pull/1"
    everything = context.search(ucxl.Address("*", "*", "acme", TASK))
    assert len(everything) == 3


def test_decisions_live_under_decisions_and_need_a_deciding_role() -> None:
    context = fold(
        entry(ARCH, 1, cx.DECISION, task=TASK, path=["auth.md"], text="use tokens"),
        entry(DEV, 1, cx.DECISION, task=TASK, path=["auth.md"], text="use cookies"),
    )
    assert context.get(at(ARCH, "architect", "decisions/auth.md")) is not None
    assert context.get(at(DEV, "developer", "decisions/auth.md")) is None
    assert [why for _, _, why in context.ignored] == ["its author's role may not make decisions"]


def test_search_matches_wildcards_prefixes_and_paths_below() -> None:
    context = fold(
        entry(DEV, 1, cx.PUT, task=TASK, path=["docs", "a.md"], text="a"),
        entry(DEV, 2, cx.PUT, task=TASK, path=["docs", "b.md"], text="b"),
        entry(DEV, 3, cx.PUT, task="local:other", path=["docs", "c.md"], text="c"),
        entry(ARCH, 1, cx.PUT, task=TASK, path=["docs", "d.md"], text="d"),
    )
    found = context.search(ucxl.parse(f"ucxl://{DEV.hex()[:8]}:*@acme:*/~latest/docs"))
    assert sorted(v.text for _, v in found) == ["a", "b", "c"]
    found = context.search(ucxl.parse("ucxl://*:architect@*:*/~latest"))
    assert [v.text for _, v in found] == ["d"]


@pytest.mark.parametrize(
    ("author", "kind", "body", "why"),
    [
        (OUTSIDER, cx.PUT, {"task": TASK, "path": ["a"], "text": "x"}, "not a member"),
        (DEV, cx.PUT, {"task": TASK, "path": "a", "text": "x"}, "path"),
        (DEV, cx.PUT, {"task": TASK, "path": ["a"], "text": 7}, "text"),
        (DEV, cx.PUT, {"task": TASK, "path": ["a"], "text": "x" * (cx.MAX_TEXT + 1)}, "text"),
        (DEV, cx.PUT, {"task": "a*b", "path": ["a"], "text": "x"}, "not a UCXL address"),
        (DEV, cx.PUT, {"task": 5, "path": ["a"], "text": "x"}, "task"),
        (DEV, cx.PUT, {"task": TASK, "path": [""], "text": "x"}, "not a UCXL address"),
    ],
)
def test_what_does_not_fit_is_ignored_with_a_reason(
    author: bytes, kind: str, body: dict[str, object], why: str
) -> None:
    context = fold(entry(author, 1, kind, **body))
    assert not context.items()
    assert len(context.ignored) == 1 and why in context.ignored[0][2]


def test_a_body_that_is_not_a_map_is_ignored() -> None:
    bad = cx.ContextEntry(DEV, 1, 1, cx.PUT, b"\x00" * 32, b"\xff\xfe")
    context = cx.fold_context([bad], ROLES, "acme", DECIDERS)
    assert context.ignored == [(DEV, 1, "its body is not a map")]


def test_other_kinds_are_not_context() -> None:
    assert not fold(entry(DEV, 1, "task.note", text="x")).items()
    assert not fold(entry(DEV, 1, "task.note", text="x")).ignored


@pytest.mark.parametrize(
    ("cluster", "project"),
    [
        ("Demo", "demo"),
        ("my team!", "my-team"),
        (None, "bzzz"),
        ("***", "bzzz"),
        ("a.b_c", "a.b_c"),
    ],
)
def test_a_clusters_project_name(cluster: str | None, project: str) -> None:
    assert cx.project_name(cluster) == project


def _state(context: cx.Context) -> list[tuple[str, list[tuple[int, str, int]]]]:
    return [
        (str(item.address), [(v.number, v.text, v.seq) for v in item.versions])
        for item in context.items()
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([DEV, ARCH, OUTSIDER]),
            st.sampled_from([cx.PUT, cx.DECISION, hm.PLAN]),
            st.sampled_from(["a.md", "b.md", "decisions/c.md"]),
        ),
        max_size=30,
    ),
    st.integers(min_value=0, max_value=30),
)
def test_a_later_fold_merged_in_is_the_fold_of_everything(
    writes: list[tuple[bytes, str, str]], split: int
) -> None:
    seqs: dict[bytes, int] = {}
    entries = []
    for author, kind, path in writes:
        seqs[author] = seqs.get(author, 0) + 1
        body = {"thread": TASK, "text": path} if kind == hm.PLAN else {}
        body = body or {"task": TASK, "path": path.split("/"), "text": f"{path} {seqs[author]}"}
        entries.append(entry(author, seqs[author], kind, **body))
    first, later = entries[:split], entries[split:]
    whole, merged = fold(*entries), fold(*first).merged(fold(*later))
    assert _state(merged) == _state(whole)
    assert sorted(merged.ignored) == sorted(whole.ignored)
    for item in whole.items():  # and a short agent prefix finds the same item
        short = item.address
        prefixed = ucxl.Address(short.agent[:8], *_rest_of(short))
        assert [i.address for i in merged.find(prefixed)] == [short]


def _rest_of(a: ucxl.Address) -> tuple[str, str, str, ucxl.Temporal, tuple[str, ...]]:
    return a.role, a.project, a.task, a.temporal, a.path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("   \n", "the text is empty"),
        ("é" * 30_001, "60002 bytes of UTF-8; at most 60000"),
        ("a\ud800b", "not valid Unicode: surrogates not allowed at character 1"),
    ],
)
def test_a_version_text_is_checked_in_bytes_and_as_unicode(text: str, words: str) -> None:
    from bzzz.domain.context_write import check_text
    from bzzz.errors import UsageError

    with pytest.raises(UsageError, match=words):
        check_text(text)
    check_text("é" * 30_000)  # 60,000 bytes: the most there may be
