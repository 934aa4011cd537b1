"""Property tests: whatever single byte is changed, whichever entry is deleted, however
entries are reordered, the audit finds it, and names the place."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.audit import audit_store
from bzzz.audit.runner import seq_ranges
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.conftest import make_signer
from tests.support import tamper
from tests.support.builders import build_chain

AUTHORS = [make_signer(n) for n in (11, 12, 13)]
LENGTH = 8
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "store.db"
    with EventStore(resolve_store_url(f"sqlite:///{path}")) as store:
        for signer in AUTHORS:
            store.ingest(e.raw for e in build_chain(signer, LENGTH))
    return path


@pytest.fixture
def fresh(template: Path, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def _copy(template: Path, folder: Path, name: str) -> EventStore:
    target = folder / f"{name}.db"
    shutil.copy(template, target)
    return EventStore(resolve_store_url(f"sqlite:///{target}"))


authors = st.integers(0, len(AUTHORS) - 1)
seqs = st.integers(1, LENGTH)


@SETTINGS
@given(
    who=authors,
    seq=seqs,
    index=st.integers(0, 10_000),
    mask=st.integers(1, 255),
    full=st.booleans(),
)
def test_any_changed_byte_is_found_at_its_seq(
    template: Path, fresh: Path, who: int, seq: int, index: int, mask: int, full: bool
) -> None:
    store = _copy(template, fresh, f"b{who}{seq}{index}{mask}{full}")
    author = AUTHORS[who].public_key
    tamper.flip_byte(store, author, seq, index, mask)
    report = audit_store(store.url, full=full)
    store.close()
    assert not report.ok
    assert any(f.author == author.hex() and f.seq == seq for f in report.findings), report.findings


@SETTINGS
@given(who=authors, seq=seqs)
def test_any_deleted_entry_is_found(template: Path, fresh: Path, who: int, seq: int) -> None:
    store = _copy(template, fresh, f"d{who}{seq}")
    author = AUTHORS[who].public_key
    tamper.delete_entry(store, author, seq)
    report = audit_store(store.url)
    store.close()
    assert {(f.author, f.seq, f.code) for f in report.findings} == {(author.hex(), seq, "missing")}


@SETTINGS
@given(a=st.tuples(authors, seqs), b=st.tuples(authors, seqs))
def test_any_reorder_of_stored_entries_is_found(
    template: Path, fresh: Path, a: tuple[int, int], b: tuple[int, int]
) -> None:
    if a == b:
        return
    store = _copy(template, fresh, f"r{a}{b}")
    first = (AUTHORS[a[0]].public_key, a[1])
    second = (AUTHORS[b[0]].public_key, b[1])
    tamper.swap_states(store, first, second)
    report = audit_store(store.url)
    store.close()
    places = {(f.author, f.seq) for f in report.findings}
    assert (first[0].hex(), first[1]) in places
    assert (second[0].hex(), second[1]) in places


@SETTINGS
@given(who=authors, seq_a=seqs, seq_b=seqs)
def test_any_reorder_of_arrivals_is_found(
    template: Path, fresh: Path, who: int, seq_a: int, seq_b: int
) -> None:
    if seq_a == seq_b:
        return
    store = _copy(template, fresh, f"p{who}{seq_a}{seq_b}")
    tamper.swap_positions(store, AUTHORS[who].public_key, seq_a, seq_b)
    report = audit_store(store.url)
    store.close()
    assert any(f.code == "arrival-order" for f in report.findings)


_COLUMNS = {
    "bzzz_entries": ["originator_id", "originator_version", "topic", "state", "id"],
    "bzzz_heads": ["author", "seq", "hash", "lamport", "forked_seq"],
}
_GARBAGE = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.floats(allow_nan=False),
)


@SETTINGS
@given(table=st.sampled_from(sorted(_COLUMNS)), data=st.data(), value=_GARBAGE)
def test_garbage_of_any_type_in_any_column_is_reported_never_a_crash(
    template: Path, fresh: Path, table: str, data: st.DataObject, value: object
) -> None:
    import sqlite3

    column = data.draw(st.sampled_from(_COLUMNS[table]))
    target = fresh / f"g{abs(hash((table, column, repr(value))))}.db"
    shutil.copy(template, target)
    conn = sqlite3.connect(target)
    rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table}")]
    rowid = data.draw(st.sampled_from(rowids))
    original = conn.execute(f"SELECT {column} FROM {table} WHERE rowid=?", (rowid,)).fetchone()[0]
    try:
        conn.execute(f"UPDATE {table} SET {column}=? WHERE rowid=?", (value, rowid))
        conn.commit()
    except sqlite3.IntegrityError:
        return  # the schema itself refused it (NOT NULL, unique): nothing to audit
    finally:
        conn.close()
    report = audit_store(resolve_store_url(f"sqlite:///{target}"))
    changed = value != original and not (isinstance(value, float) and value == original)
    if changed and not (table == "bzzz_entries" and column == "id"):
        assert not report.ok, (table, column, value)


def test_a_row_claiming_a_huge_seq_is_reported_without_a_range_per_50000_seqs(
    template: Path, tmp_path: Path
) -> None:
    """Found by the property above: one row set to seq 2**40 made the audit plan 22
    million chunks and run out of memory."""
    import sqlite3

    target = tmp_path / "huge.db"
    shutil.copy(template, target)
    with sqlite3.connect(target) as conn:
        conn.execute("UPDATE bzzz_entries SET originator_version = ? WHERE rowid = 2", (2**40,))
    report = audit_store(resolve_store_url(f"sqlite:///{target}"))
    assert {"missing", "misplaced"} <= {f.code for f in report.findings}
    assert seq_ranges(2**40, 8) == [(0, 2**40)]
    assert seq_ranges(120_000, 120_000) == [(0, 50_000), (50_000, 100_000), (100_000, 120_000)]
    assert seq_ranges(0, 0) == []
