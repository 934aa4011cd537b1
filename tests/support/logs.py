"""Signed logs of several authors built in memory, with one Lamport clock across them:
membership acts, votes and leadership claims for the pure rules' tests."""

from __future__ import annotations

from typing import Any

from bzzz.domain import leadership as lead
from bzzz.domain import membership as ms
from bzzz.domain.entry import Entry, create_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload


class Logs:
    """Signed entries from several authors, with one Lamport clock across them."""

    def __init__(self) -> None:
        self.lamport = 0
        self.tips: dict[bytes, tuple[int, bytes | None]] = {}
        self.entries: list[Entry] = []

    def add(self, signer: Ed25519Signer, kind: str, body: dict[str, Any]) -> Entry:
        self.lamport += 1
        seq, prev = self.tips.get(signer.public_key, (0, None))
        entry = create_entry(
            signer,
            seq=seq + 1,
            prev=prev,
            lamport=self.lamport,
            ts=1000 * self.lamport,
            kind=kind,
            body=encode_payload(body),
        )
        self.tips[signer.public_key] = (seq + 1, entry.hash)
        self.entries.append(entry)
        return entry

    def vote(self, voter: Ed25519Signer, term: int, candidate: Ed25519Signer) -> Entry:
        return self.add(voter, lead.VOTE, lead.vote_body(term, candidate.public_key))

    def lead(
        self,
        leader: Ed25519Signer,
        term: int,
        votes: list[Entry],
        seen: list[Entry] | None = None,
    ) -> Entry:
        """`seen`: the entries the leader had folded its membership from (all of them
        unless given)."""
        cut: dict[bytes, int] = {}
        for e in self.entries if seen is None else seen:
            if e.kind in ms.KINDS:
                cut[e.author] = max(cut.get(e.author, 0), e.seq)
        body = lead.leader_body(term, [v.hash for v in votes], "no-leader", 0, cut)
        return self.add(leader, lead.LEADER, body)

    def of(self, signer: Ed25519Signer) -> list[Entry]:
        return [e for e in self.entries if e.author == signer.public_key]

    def admit(self, inviter: Ed25519Signer, member: bytes, name: str, role: str) -> Entry:
        """An invite for `role` and the admission of `member` with it."""
        token = secret_hash(name.encode().ljust(16, b"."))
        self.add(inviter, ms.INVITED, ms.invited_body(token, role, 10**12))
        return self.add(inviter, ms.ADMITTED, ms.admitted_body(member, name, role, token))

    def invite(self, inviter: Ed25519Signer, member: Ed25519Signer, name: str) -> Entry:
        secret = secret_hash(name.encode() * 16)
        self.add(inviter, ms.INVITED, ms.invited_body(secret, "developer", 10**12))
        return self.add(
            inviter, ms.ADMITTED, ms.admitted_body(member.public_key, name, "developer", secret)
        )
