"""UCXL addresses against the published vectors, round trips, hostile text and search."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bzzz.domain import tasks
from bzzz.domain.ucxl import (
    FIRST,
    LATEST,
    MAX_ADDRESS,
    MAX_COUNT,
    MAX_TIME_MS,
    Address,
    Temporal,
    TemporalKind,
    format_time,
    is_pattern,
    matches,
    parse,
)
from bzzz.errors import AddressError, BzzzError, UsageError

VECTORS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "ucxl"
VECTORS = json.loads((VECTORS_DIR / "vectors.json").read_text(encoding="utf-8"))
VALID = VECTORS["hand_written"]["valid"] + VECTORS["generated"]["valid"]
HAND_INVALID = VECTORS["hand_written"]["invalid"]
GENERATED_INVALID = VECTORS["generated"]["invalid"]
KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
PARSE_BUDGET_S = 0.25  # per call: far above what a linear scan of 3000 characters takes


def described(address: Address) -> dict[str, Any]:
    return {
        "agent": address.agent,
        "role": address.role,
        "project": address.project,
        "task": address.task,
        "temporal": {"kind": address.temporal.kind.value, "value": address.temporal.value},
        "path": list(address.path),
    }


def test_vectors_are_what_the_generator_makes() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS_DIR / "generate.py"), "--check"], capture_output=True
    )
    assert result.returncode == 0, (
        "fixtures/ucxl/vectors.json is out of date or the parser disagrees with a "
        f"hand-written vector: {result.stdout.decode()}"
    )


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["case"])
def test_valid_vectors_parse_to_their_parts_and_print_canonically(case: dict[str, Any]) -> None:
    address = parse(case["text"])
    assert described(address) == case["parts"]
    assert str(address) == case["canonical"]
    assert parse(case["canonical"]) == address


@pytest.mark.parametrize("case", HAND_INVALID, ids=lambda c: c["case"])
def test_hand_written_invalid_vectors_fail_where_they_say(case: dict[str, Any]) -> None:
    with pytest.raises(AddressError) as caught:
        parse(case["text"])
    assert caught.value.position == case["position"]
    assert case["fragment"] in str(caught.value)


@pytest.mark.parametrize("case", GENERATED_INVALID, ids=lambda c: c["case"])
def test_generated_invalid_vectors_fail_where_they_say(case: dict[str, Any]) -> None:
    with pytest.raises(AddressError) as caught:
        parse(case["text"])
    assert (caught.value.position, caught.value.expected) == (case["position"], case["expected"])
    assert str(caught.value) == case["message"]


def test_an_address_error_is_a_usage_error_that_says_where() -> None:
    with pytest.raises(AddressError) as caught:
        parse("ucxl://3f2a:Dev@bzzz:local:x/~latest")
    error = caught.value
    assert isinstance(error, UsageError) and isinstance(error, BzzzError)
    assert error.position == 12
    assert error.expected == "a role (a lowercase letter first) or '*'"
    assert str(error) == (
        "bad UCXL address at position 12: expected a role (a lowercase letter first) or '*', "
        "found 'D'"
    )


def test_parse_refuses_what_is_not_text() -> None:
    with pytest.raises(AddressError):
        parse(b"ucxl://*:*@*:*/~latest")  # type: ignore[arg-type]


# --- round trips ------------------------------------------------------------------------

HEX = "0123456789abcdef"
VISIBLE_BUT_STAR = [chr(c) for c in range(0x21, 0x7F) if c != 0x2A]

github_ids = st.builds(
    tasks.github_id,
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._-]{1,100}", fullmatch=True),
    st.integers(1, 9_999_999_999),
)
local_ids = st.builds(tasks.local_id, st.from_regex(r"[a-z0-9][a-z0-9._-]{0,99}", fullmatch=True))
hive_ids = st.from_regex(r"hive:[A-Za-z0-9._-]{1,100}/[A-Za-z0-9._-]{1,100}", fullmatch=True)
task_ids = st.one_of(github_ids, local_ids, hive_ids).filter(
    lambda t: tasks.task_id_problem(t) is None
)

agents = st.one_of(st.just("*"), st.text(HEX, min_size=4, max_size=64))
roles = st.one_of(st.just("*"), st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True))
projects = st.one_of(st.just("*"), st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True))
task_values = st.one_of(st.just("*"), task_ids, st.text(VISIBLE_BUT_STAR, min_size=1, max_size=200))
temporals = st.one_of(
    st.just(LATEST),
    st.just(FIRST),
    st.builds(
        Temporal,
        st.sampled_from([TemporalKind.BACK, TemporalKind.FORWARD, TemporalKind.VERSION]),
        st.one_of(st.integers(1, 20), st.integers(1, MAX_COUNT)),
    ),
    st.builds(Temporal, st.just(TemporalKind.TIME), st.integers(0, MAX_TIME_MS)),
)
segments = st.text(
    st.characters(exclude_categories=["Cs"], min_codepoint=0x20, exclude_characters="/\x7f"),
    min_size=1,
    max_size=24,
).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255)
paths = st.lists(segments, max_size=12).map(tuple)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    fields = (
        draw(agents),
        draw(roles),
        draw(projects),
        draw(task_values),
        draw(temporals),
        draw(paths),
    )
    try:
        return Address(*fields)
    except ValueError:  # longer than MAX_ADDRESS when printed
        assume(False)
        raise


@settings(max_examples=500, deadline=None)
@given(addresses())
def test_every_address_prints_and_parses_back(address: Address) -> None:
    text = str(address)
    assert len(text) <= MAX_ADDRESS
    assert parse(text) == address
    assert str(parse(text)) == text


@settings(max_examples=300, deadline=None)
@given(task_ids, paths)
def test_bzzz_task_ids_round_trip_and_never_leak_into_the_rest(
    task: str, path: tuple[str, ...]
) -> None:
    address = Address(KEY, "developer", "bzzz", task, LATEST, path)
    text = str(address)
    authority = text.removeprefix("ucxl://").split("/", 1)[0]
    assert "#" not in text
    assert authority.endswith(task.replace("/", "%2F").replace("#", "%23"))
    parsed = parse(text)
    assert parsed.task == task and tasks.task_id_problem(parsed.task) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_TIME_MS))
def test_times_print_and_parse_to_the_millisecond(ms: int) -> None:
    assert parse(f"ucxl://*:*@*:*/~{format_time(ms)}").temporal == Temporal(TemporalKind.TIME, ms)


# --- hostile text -----------------------------------------------------------------------


def parse_or_error(text: str) -> Address | AddressError:
    started = time.perf_counter()
    try:
        result: Address | AddressError = parse(text)
    except AddressError as exc:
        result = exc
        assert 0 <= exc.position <= min(len(text), MAX_ADDRESS)
        assert f"position {exc.position}:" in str(exc) and exc.expected in str(exc)
    assert time.perf_counter() - started < PARSE_BUDGET_S
    return result


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=3000))
def test_garbage_never_crashes_the_parser(text: str) -> None:
    parse_or_error(text)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=2000, max_size=3000))
def test_long_garbage_never_crashes_the_parser(text: str) -> None:
    parse_or_error(text)
    parse_or_error("ucxl://*:*@*:*/~latest/" + text)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ucxl:/*@~%-+vVTZ.0123456789abcdefF#", max_size=3000))
def test_garbage_made_of_the_grammars_own_characters_never_crashes_it(text: str) -> None:
    parse_or_error("ucxl://" + text)


@settings(max_examples=600, deadline=None)
@given(addresses(), st.data())
def test_damaged_addresses_parse_or_fail_cleanly(address: Address, data: st.DataObject) -> None:
    text = str(address)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(st.characters(max_codepoint=0x2FF) | st.sampled_from(":/@*~%.#-+"))
        if action == "insert":
            text = text[:at] + char + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    result = parse_or_error(text)
    if isinstance(result, Address):
        assert parse(str(result)) == result


@pytest.mark.parametrize(
    "text",
    [
        "ucxl://" + "0" * 2041,
        "ucxl://*:*@*:*/~latest/" + "%41" * 675,
        "ucxl://*:*@*:*/~latest" + "/a" * 1013,
        "ucxl://*:*@*:*/~latest/" + "%E2%82" * 337,
        "ucxl://abcd:dev@bzzz:" + "%21" * 675,
        "ucxl://*:*@*:*/~-" + "9" * 2031,
        "x" * 10**6,
    ],
    ids=["hex", "escapes", "segments", "cut-utf8", "task-escapes", "digits", "a-megabyte"],
)
def test_the_worst_texts_are_read_quickly(text: str) -> None:
    parse_or_error(text)


# --- building addresses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        ("3F2A", "dev", "bzzz", "local:x"),  # upper case hex is not canonical
        ("abc", "dev", "bzzz", "local:x"),
        ("abcd", "Dev", "bzzz", "local:x"),
        ("abcd", "dev", "-bzzz", "local:x"),
        ("abcd", "dev", "bzzz", "local:a b"),
        ("abcd", "dev", "bzzz", "local:a*"),
        ("abcd", "dev", "bzzz", ""),
        ("abcd", "dev", "bzzz", "t" * 201),
        ("**", "dev", "bzzz", "local:x"),
    ],
)
def test_an_address_that_could_not_be_read_back_cannot_be_built(
    fields: tuple[str, str, str, str],
) -> None:
    with pytest.raises(ValueError):
        Address(*fields)


@pytest.mark.parametrize(
    "path",
    [("",), (".",), ("..",), ("a/b",), ("a\x00",), ("\ud800",), ("é" * 128,), ("s",) * 33],
)
def test_paths_that_could_not_be_read_back_are_refused(path: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Address("abcd", "dev", "bzzz", "local:x", LATEST, path)


def test_an_address_longer_than_the_limit_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        Address("abcd", "dev", "bzzz", "local:x", LATEST, ("a" * 250,) * 9)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (TemporalKind.LATEST, 1),
        (TemporalKind.BACK, 0),
        (TemporalKind.FORWARD, -1),
        (TemporalKind.VERSION, MAX_COUNT + 1),
        (TemporalKind.TIME, -1),
        (TemporalKind.TIME, MAX_TIME_MS + 1),
        (TemporalKind.VERSION, True),
        ("latest", 0),
    ],
)
def test_temporals_out_of_range_are_refused(kind: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        Temporal(kind, value)


def test_temporal_forms_print_as_the_readme_says() -> None:
    assert [
        str(t)
        for t in (
            LATEST,
            FIRST,
            Temporal(TemporalKind.BACK, 3),
            Temporal(TemporalKind.FORWARD, 2),
            Temporal(TemporalKind.VERSION, 7),
            Temporal(TemporalKind.TIME, 1_796_292_000_000),
            Temporal(TemporalKind.TIME, 1_796_292_000_007),
        )
    ] == [
        "~latest",
        "~first",
        "~-3",
        "~+2",
        "~v7",
        "~2026-12-03T10:00:00Z",
        "~2026-12-03T10:00:00.007Z",
    ]


# --- search -----------------------------------------------------------------------------

ITEM = parse(f"ucxl://{KEY}:developer@bzzz:github:acme%2Fapi%2312/~v3/decisions/auth.md")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("ucxl://*:*@*:*/~latest", True),
        (f"ucxl://{KEY}:developer@bzzz:github:acme%2Fapi%2312/~v3/decisions/auth.md", True),
        ("ucxl://*:*@*:*/~first/decisions", True),  # the path below the pattern's
        ("ucxl://*:*@*:*/~latest/decisions/auth.md", True),  # the temporal takes no part
        ("ucxl://03a1:*@bzzz:*/~latest", True),  # an agent id prefix
        ("ucxl://03A107:*@*:*/~latest", True),
        ("ucxl://*:developer@*:github:acme%2Fapi%2312/~latest", True),
        ("ucxl://03a2:*@*:*/~latest", False),
        ("ucxl://*:reviewer@*:*/~latest", False),
        ("ucxl://*:*@api:*/~latest", False),
        ("ucxl://*:*@*:github:acme%2Fapi%2313/~latest", False),
        ("ucxl://*:*@*:*/~latest/decisions/auth", False),  # segments, not string prefixes
        ("ucxl://*:*@*:*/~latest/decisions/auth.md/more", False),
        ("ucxl://*:*@*:*/~latest/plans", False),
    ],
)
def test_matches(pattern: str, expected: bool) -> None:
    assert matches(parse(pattern), ITEM) is expected


def test_a_wildcard_in_an_address_is_matched_only_by_a_wildcard() -> None:
    stored = parse("ucxl://*:developer@bzzz:*/~latest")
    assert matches(parse("ucxl://*:*@*:*/~latest"), stored)
    assert not matches(parse("ucxl://abcd:developer@bzzz:*/~latest"), stored)
    assert not matches(parse("ucxl://*:developer@bzzz:local:x/~latest"), stored)


@settings(max_examples=300, deadline=None)
@given(addresses())
def test_an_address_matches_itself_and_the_all_wildcard_pattern(address: Address) -> None:
    assert matches(address, address)
    assert matches(Address("*", "*", "*", "*"), address)


def test_is_pattern() -> None:
    assert not is_pattern(ITEM) and not ITEM.is_pattern
    for text in (
        "ucxl://*:developer@bzzz:local:x/~latest",
        "ucxl://abcd:*@bzzz:local:x/~latest",
        "ucxl://abcd:developer@*:local:x/~latest",
        "ucxl://abcd:developer@bzzz:*/~latest",
    ):
        assert is_pattern(parse(text)) and parse(text).is_pattern
    assert not is_pattern(parse("ucxl://abcd:dev@bzzz:local:x/~latest/%2A"))
