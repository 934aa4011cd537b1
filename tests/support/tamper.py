"""Ways to damage a store behind BZZZ's back, as an attacker or a bad disk would."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from bzzz.store import EventStore
from bzzz.store.tables import heads, originator_of


def _events(store: EventStore):  # type: ignore[no-untyped-def]
    return store.recorder.events_record_cls.__table__


def _where(store: EventStore, author: bytes, seq: int):  # type: ignore[no-untyped-def]
    t = _events(store)
    return (t.c.originator_id == originator_of(author)) & (t.c.originator_version == seq)


def flip_byte(store: EventStore, author: bytes, seq: int, index: int, mask: int = 0x01) -> None:
    t = _events(store)
    with store.engine.begin() as conn:
        raw = bytearray(
            conn.execute(select(t.c.state).where(_where(store, author, seq))).scalar_one()
        )
        raw[index % len(raw)] ^= mask
        conn.execute(update(t).where(_where(store, author, seq)).values(state=bytes(raw)))


def delete_entry(store: EventStore, author: bytes, seq: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(_events(store)).where(_where(store, author, seq)))


def swap_states(store: EventStore, a: tuple[bytes, int], b: tuple[bytes, int]) -> None:
    t = _events(store)
    with store.engine.begin() as conn:
        raw_a = conn.execute(select(t.c.state).where(_where(store, *a))).scalar_one()
        raw_b = conn.execute(select(t.c.state).where(_where(store, *b))).scalar_one()
        conn.execute(update(t).where(_where(store, *a)).values(state=raw_b))
        conn.execute(update(t).where(_where(store, *b)).values(state=raw_a))


def swap_positions(store: EventStore, author: bytes, seq_a: int, seq_b: int) -> None:
    t = _events(store)
    with store.engine.begin() as conn:
        pa = conn.execute(select(t.c.id).where(_where(store, author, seq_a))).scalar_one()
        pb = conn.execute(select(t.c.id).where(_where(store, author, seq_b))).scalar_one()
        conn.execute(update(t).where(t.c.id == pa).values(id=-1))
        conn.execute(update(t).where(t.c.id == pb).values(id=pa))
        conn.execute(update(t).where(t.c.id == -1).values(id=pb))


def move_entry(store: EventStore, author: bytes, seq: int, to_author: bytes, to_seq: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(_events(store))
            .where(_where(store, author, seq))
            .values(originator_id=originator_of(to_author), originator_version=to_seq)
        )


def set_head(store: EventStore, author: bytes, seq: int, hash_: bytes, lamport: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(heads)
            .where(heads.c.author == author)
            .values(seq=seq, hash=hash_, lamport=lamport)
        )
