"""The projection framework: exactly once, resumable, rebuildable to the same result."""

from __future__ import annotations

from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.projections import ProjectionRunner
from bzzz.projections.authors import AuthorsProjection, read_authors
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl
from tests.conftest import make_signer
from tests.support.builders import run_in_threads

BODY = encode_payload({})


def _view(store: EventStore) -> list[dict[str, object]]:
    with store.datastore.transaction(commit=False) as session:
        return [s.as_json() for s in read_authors(session)]


def _record(store: EventStore, alice: Ed25519Signer, bob: Ed25519Signer) -> None:
    store.append_batch(
        alice, [("task.created", BODY), ("task.note", BODY), ("task.note", BODY)], 100
    )
    store.append_batch(bob, [("hmmm.plan_proposed", BODY)], 50)
    store.append(alice, "task.note", BODY, 300)


def test_the_authors_projection_summarises_each_log(store: EventStore, alice, bob) -> None:  # type: ignore[no-untyped-def]
    _record(store, alice, bob)
    runner = ProjectionRunner(store, AuthorsProjection(), batch=2)
    assert runner.catch_up() == 5
    view = {v["author"]: v for v in _view(store)}
    a = view[alice.public_key.hex()]
    assert (a["head_seq"], a["entries"], a["first_ts"], a["last_ts"]) == (4, 4, 100, 300)
    assert a["kinds"] == {"task.created": 1, "task.note": 3}
    assert a["head_hash"] == store.head(alice.public_key).hash.hex()  # type: ignore[union-attr]
    assert view[bob.public_key.hex()]["kinds"] == {"hmmm.plan_proposed": 1}
    assert runner.behind() == 0 and runner.catch_up() == 0


def test_it_resumes_where_it_stopped_and_never_applies_twice(store: EventStore, alice, bob) -> None:  # type: ignore[no-untyped-def]
    _record(store, alice, bob)
    ProjectionRunner(store, AuthorsProjection(), batch=3).run_once()
    store.append(bob, "task.note", BODY, 400)
    fresh_runner = ProjectionRunner(store, AuthorsProjection(), batch=3)  # as after a restart
    assert fresh_runner.position() == 3
    fresh_runner.catch_up()
    counts = {v["author"]: v["entries"] for v in _view(store)}
    assert counts == {alice.public_key.hex(): 4, bob.public_key.hex(): 2}


def test_racing_runners_apply_each_entry_once(store_url: StoreUrl) -> None:
    with EventStore(store_url) as store:
        for n in range(20, 26):
            store.append_batch(make_signer(n), [("task.note", BODY)] * 40, n)
    stores = [EventStore(store_url) for _ in range(3)]
    run_in_threads(lambda s: ProjectionRunner(s, AuthorsProjection(), batch=7).catch_up(), stores)
    assert sorted(v["entries"] for v in _view(stores[0])) == [40] * 6
    for s in stores:
        s.close()


def test_rebuild_from_zero_reaches_the_same_result(store: EventStore, alice, bob) -> None:  # type: ignore[no-untyped-def]
    _record(store, alice, bob)
    runner = ProjectionRunner(store, AuthorsProjection(), batch=2)
    runner.catch_up()
    before = _view(store)
    assert runner.rebuild() == 5
    assert _view(store) == before
