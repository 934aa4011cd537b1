"""Role keys: who is entitled to which, the grants that hand them out, and what the
admin owes (grants missing, rotations due). Pure rules over entries.

A role key is an age X25519 key pair; its public half (the *recipient*) is what content
is sealed to, and names the key. The admin writes one `key.granted` entry per key and
grantee: the role key's secret half, sealed to the grantee's agent key (an Ed25519 key
is an age recipient as it is). A grant counts only when its author is the proven leader
of the term it names and it was written before a newer term was proven, as for the
admin's task entries (`bzzz.domain.board`). Generations count up per role; two admins
racing may both write generation N, and the recipient tells the two keys apart.

Grants are public (their ciphertexts are not), so every node knows every role's latest
recipient and can seal for any role; only the members entitled to a role can open.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.entry import Entry
from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.domain.membership import Membership
from bzzz.domain.payload import payload_map
from bzzz.domain.roles import Roles, can_decrypt
from bzzz.domain.sealing import MAX_RECIPIENT_CHARS

GRANTED = "key.granted"
MASTER = "master"  # the `to` of a grant sealed to the master recipient of a split
MAX_GENERATION = 2**31


@dataclass(frozen=True, slots=True)
class Grant:
    """One `key.granted` entry, parsed."""

    author: bytes
    term: int
    role: str
    generation: int
    recipient: str
    to: bytes | None  # the grantee's agent key; None: the master of `split`
    split: bytes | None
    sealed: bytes
    hash: bytes
    lamport: int
    seq: int

    @property
    def grantee(self) -> bytes | str:
        return self.to if self.to is not None else MASTER


@dataclass(frozen=True, slots=True)
class Generation:
    role: str
    generation: int
    recipient: str
    term: int
    lamport: int

    @property
    def order(self) -> tuple[int, int, int, str]:
        return (self.generation, self.term, self.lamport, self.recipient)


def grant_body(
    term: int,
    role: str,
    generation: int,
    recipient: str,
    to: bytes | None,
    sealed: bytes,
    split: bytes | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "term": term,
        "role": role,
        "generation": generation,
        "recipient": recipient,
        "to": to if to is not None else MASTER,
        "sealed": sealed,
    }
    if to is None:
        body["split"] = split
    return body


def grant_plaintext(
    author: bytes, role: str, generation: int, recipient: str, to: bytes | None, secret: str
) -> dict[str, Any]:
    """What a grant's ciphertext holds: the role key's secret half, bound to the grant
    (sign, then encrypt: a ciphertext copied into another grant does not open)."""
    return {
        "kind": GRANTED,
        "author": author,
        "role": role,
        "generation": generation,
        "recipient": recipient,
        "to": to if to is not None else MASTER,
        "identity": secret,
    }


def secret_of_grant(grant: Grant, plaintext: Mapping[str, Any]) -> str | None:
    """The role key's secret half from a decrypted grant, when it was made for this
    grant; None otherwise."""
    expected = grant_plaintext(
        grant.author, grant.role, grant.generation, grant.recipient, grant.to, ""
    )
    if set(plaintext) != set(expected):
        return None
    if any(plaintext[k] != v for k, v in expected.items() if k != "identity"):
        return None
    secret = plaintext["identity"]
    return secret if isinstance(secret, str) and 0 < len(secret) <= 128 else None


def _count(value: object, top: int = 2**63) -> int | None:
    return value if type(value) is int and 0 <= value < top else None


def parse_grant(entry: Entry) -> Grant | None:
    """A `key.granted` entry's fields, or None when malformed."""
    data = payload_map(entry.body)
    if data is None or entry.kind != GRANTED:
        return None
    term, generation = _count(data.get("term")), _count(data.get("generation"), MAX_GENERATION)
    role, recipient, to, sealed = (
        data.get("role"),
        data.get("recipient"),
        data.get("to"),
        data.get("sealed"),
    )
    if term is None or generation is None or generation < 1:
        return None
    if not isinstance(role, str) or not 0 < len(role) <= 64:
        return None
    if not isinstance(recipient, str) or not 0 < len(recipient) <= MAX_RECIPIENT_CHARS:
        return None
    if not isinstance(sealed, bytes) or not sealed:
        return None
    split = data.get("split")
    if to == MASTER:
        if not isinstance(split, bytes) or len(split) != HASH_BYTES:
            return None
        member: bytes | None = None
    elif isinstance(to, bytes) and len(to) == KEY_BYTES and split is None:
        member, split = to, None
    else:
        return None
    return Grant(
        entry.author,
        term,
        role,
        generation,
        recipient,
        member,
        split,
        sealed,
        entry.hash,
        entry.lamport,
        entry.seq,
    )


def admin_problem(
    author: bytes,
    term: int,
    lamport: int,
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
) -> str | None:
    """Why an admin's entry naming `term` does not count, if it does not."""
    if leaders.get(term) != author:
        return f"not written by the proven leader of term {term}"
    end = ends.get(term)
    if end is not None and lamport > end:
        return f"written after a newer term than {term} was proven"
    return None


@dataclass
class KeyBook:
    """The grants that count, folded: every role's generations and who holds which."""

    grants: list[Grant] = field(default_factory=list)
    ignored: list[tuple[Grant, str]] = field(default_factory=list)
    generations: dict[str, Generation] = field(default_factory=dict)  # by recipient
    holders: dict[str, set[bytes | str]] = field(default_factory=dict)  # recipient -> grantees

    def of_role(self, role: str) -> list[Generation]:
        found = [g for g in self.generations.values() if g.role == role]
        return sorted(found, key=lambda g: g.order)

    def latest(self, role: str) -> Generation | None:
        found = self.of_role(role)
        return found[-1] if found else None

    def granted(self, recipient: str, to: bytes | str) -> bool:
        return to in self.holders.get(recipient, ())

    def grants_to(self, to: bytes | str) -> list[Grant]:
        return [g for g in self.grants if g.grantee == to]


def fold_grants(
    grants: Iterable[Grant], leaders: Mapping[int, bytes], ends: Mapping[int, int]
) -> KeyBook:
    """The grants that count, in causal order. A recipient is one key: a later grant that
    names it under another role or generation is ignored."""
    book = KeyBook()
    for grant in sorted(grants, key=lambda g: (g.lamport, g.author, g.seq)):
        problem = admin_problem(grant.author, grant.term, grant.lamport, leaders, ends)
        known = book.generations.get(grant.recipient)
        if (
            problem is None
            and known is not None
            and (known.role, known.generation)
            != (
                grant.role,
                grant.generation,
            )
        ):
            problem = "its recipient is already a key of another role or generation"
        if problem is not None:
            book.ignored.append((grant, problem))
            continue
        if known is None:
            book.generations[grant.recipient] = Generation(
                grant.role, grant.generation, grant.recipient, grant.term, grant.lamport
            )
        book.grants.append(grant)
        book.holders.setdefault(grant.recipient, set()).add(grant.grantee)
    return book


def entitled(membership: Membership, roles: Roles, role: str) -> list[bytes]:
    """The members who may read content sealed for `role`: its own members, those of
    roles that may read it (roles.yaml `can_read`), and master authority."""
    found = []
    for member in membership.members.values():
        reader = roles.get(member.role)
        if reader is not None and can_decrypt(reader, role):
            found.append(member.agent_id)
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A new generation of a role key, to be granted to `to`."""

    role: str
    generation: int
    reason: str
    to: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class GrantDue:
    """An existing key (which the admin holds) to be granted to a member or the master."""

    role: str
    generation: int
    recipient: str
    to: bytes | None  # None: the master of `split`
    split: bytes | None = None


@dataclass
class KeyPlan:
    rotations: list[Rotation] = field(default_factory=list)
    grants: list[GrantDue] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rotations or self.grants)


FIRST_KEY = "the role has no key yet"
LOST_ACCESS = "a member who held the latest key is no longer entitled to it"
NOT_HELD = "the admin holds no copy of the latest key to grant"


def plan_keys(
    book: KeyBook,
    membership: Membership,
    roles: Roles,
    held: Collection[str],
    master_split: bytes | None = None,
) -> KeyPlan:
    """What the admin owes, given the grants that count, today's members, the
    recipients whose secret halves it holds (`held`), and the current split of the
    master key (its hash), if any:

    - a rotation (a new generation for the role's entitled members) when the role has
      entitled members and no key, when a grantee of its latest key was removed or
      moved to a role that may not read it, or when a member lacks the latest key and
      the admin holds no copy of it;
    - a grant of every generation it holds to each entitled member lacking it (a new
      member reads the role's history), and to the master when a split exists.
    """
    plan = KeyPlan()
    for role in sorted(roles.by_name):
        members = entitled(membership, roles, role)
        latest = book.latest(role)
        if members:
            reason = _rotation_reason(book, latest, members, held)
            if reason is not None:
                number = (latest.generation if latest else 0) + 1
                plan.rotations.append(Rotation(role, number, reason, tuple(members)))
        for generation in book.of_role(role):
            if generation.recipient not in held:
                continue
            for member in members:
                if not book.granted(generation.recipient, member):
                    plan.grants.append(
                        GrantDue(role, generation.generation, generation.recipient, member)
                    )
            if master_split is not None and not _master_granted(
                book, generation.recipient, master_split
            ):
                plan.grants.append(
                    GrantDue(role, generation.generation, generation.recipient, None, master_split)
                )
    return plan


def _master_granted(book: KeyBook, recipient: str, split: bytes) -> bool:
    return any(
        g.recipient == recipient and g.to is None and g.split == split
        for g in book.grants_to(MASTER)
    )


def _rotation_reason(
    book: KeyBook, latest: Generation | None, members: list[bytes], held: Collection[str]
) -> str | None:
    if latest is None:
        return FIRST_KEY
    grantees = {g for g in book.holders.get(latest.recipient, ()) if isinstance(g, bytes)}
    if grantees - set(members):
        return LOST_ACCESS
    if latest.recipient not in held and set(members) - grantees:
        return NOT_HELD
    return None
