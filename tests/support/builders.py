"""Small builders shared by the tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from bzzz.domain.entry import Entry, create_entry
from bzzz.domain.identity import Signer
from bzzz.domain.payload import encode_payload

T = TypeVar("T")


def build_chain(
    signer: Signer, n: int, *, start_lamport: int = 1, kind: str = "task.note"
) -> list[Entry]:
    """A valid log of n entries, made without a store."""
    entries: list[Entry] = []
    prev = None
    for seq in range(1, n + 1):
        entry = create_entry(
            signer,
            seq=seq,
            prev=prev,
            lamport=start_lamport + seq - 1,
            ts=1000 + seq,
            kind=kind,
            body=encode_payload({"n": seq}),
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def run_in_threads(work: Callable[[T], None], inputs: Iterable[T], timeout: float = 120) -> None:
    """Run `work(x)` for each input on its own thread; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(item: T) -> None:
        try:
            work(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(item,)) for item in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish"
    if errors:
        raise errors[0]
