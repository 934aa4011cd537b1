"""Small builders shared by the tests."""

from __future__ import annotations

from bzzz.domain.entry import Entry, create_entry
from bzzz.domain.identity import Signer
from bzzz.domain.payload import encode_payload


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
