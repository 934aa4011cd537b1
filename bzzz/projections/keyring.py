"""The keyring: the role keys this node holds, opened from its `key.granted` entries
with its own agent key, and what they open.

Nothing secret is ever written by it: role keys (and a reconstructed master key) live
in this process's memory only, and are opened again from the logs at every start.
Every node also knows every role's *public* keys from the grants, so it can seal for
any role (`seal`), and open what is sealed for the roles it holds (`open`), seeing
"sealed for ROLE" for the others and never an error.

The age encryption (pyrage) is done here; the formats and the rules are in
`bzzz.domain.sealing`, `bzzz.domain.keys` and `bzzz.domain.key_ceremony`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import pyrage

from bzzz.domain import key_ceremony as kc
from bzzz.domain import keys as kk
from bzzz.domain.entry import Entry
from bzzz.domain.payload import payload_map
from bzzz.domain.roles import Roles
from bzzz.domain.sealing import (
    DAMAGED,
    MISMATCH,
    PLAIN,
    SEALED,
    Envelope,
    Opened,
    check_opened,
    envelope_body,
    inner_plaintext,
    no_key_message,
    not_open,
    parse_envelope,
)
from bzzz.errors import EntryError, UsageError
from bzzz.projections.reading import entries_of_kinds
from bzzz.store import EventStore

KINDS = (kk.GRANTED, *kc.KINDS)


def agent_recipient(agent_id: bytes) -> pyrage.ssh.Recipient:
    """An agent's Ed25519 key as an age recipient (``ssh-ed25519 AAAA...``)."""
    name = b"ssh-ed25519"
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", len(agent_id)) + agent_id
    return pyrage.ssh.Recipient.from_str("ssh-ed25519 " + base64.b64encode(blob).decode())


def _cbor(data: Mapping[str, Any]) -> bytes:
    encoded: bytes = cbor2.dumps(dict(data), canonical=True)
    return encoded


def seal_to_agent(agent_id: bytes, plaintext: Mapping[str, Any]) -> bytes:
    """`plaintext` (a map) encrypted to one agent's key."""
    sealed: bytes = pyrage.encrypt(_cbor(plaintext), [agent_recipient(agent_id)])
    return sealed


def seal_to_recipient(recipient: str, plaintext: bytes) -> bytes:
    """Encrypt to an age X25519 recipient; `UsageError` when it is not one."""
    try:
        target = pyrage.x25519.Recipient.from_str(recipient)
    except Exception:
        raise UsageError(f"{recipient[:20]!r}... is not an age recipient") from None
    sealed: bytes = pyrage.encrypt(plaintext, [target])
    return sealed


def new_role_key() -> tuple[pyrage.x25519.Identity, str]:
    """A fresh age X25519 key pair and its recipient."""
    identity = pyrage.x25519.Identity.generate()
    return identity, str(identity.to_public())


def identity_of(secret: str) -> pyrage.x25519.Identity | None:
    try:
        return pyrage.x25519.Identity.from_str(secret)
    except Exception:
        return None


def _decrypt_map(ciphertext: bytes, identity: Any) -> dict[str, Any] | None:
    """The CBOR map `ciphertext` decrypts to with `identity`, or None. Never raises:
    a hostile ciphertext is only something that does not open."""
    try:
        plaintext = pyrage.decrypt(ciphertext, [identity])
    except Exception:
        return None
    return payload_map(plaintext)


@dataclass(frozen=True, slots=True)
class RoleKey:
    role: str
    generation: int
    recipient: str
    source: str  # "grant" (granted to this node) or "master" (opened with the master key)
    identity: pyrage.x25519.Identity = field(repr=False, compare=False)


class Keyring:
    """The keys this node holds, folded from the key entries it is handed (`update`)."""

    def __init__(self, me: bytes, ssh_private_pem: bytes, roles: Roles) -> None:
        self.me = me
        self.roles = roles
        self._ssh = pyrage.ssh.Identity.from_buffer(ssh_private_pem)
        self._entries: dict[bytes, Entry] = {}
        self._tried: set[bytes] = set()  # grants this node tried to open
        self._keys: dict[str, RoleKey] = {}  # by recipient
        self._masters: dict[bytes, pyrage.x25519.Identity] = {}  # by split hash
        self.book = kk.KeyBook()
        self.ceremonies = kc.Ceremonies()

    # Folding

    def update(
        self,
        entries: Iterable[Entry],
        leaders: Mapping[int, bytes],
        ends: Mapping[int, int],
        members: Iterable[bytes] | None = None,
    ) -> None:
        """Take key entries (any order, repeats ignored) and fold them all again with
        the proven leaders and their terms' ends; open the grants made to this node."""
        for entry in entries:
            if entry.kind in KINDS:
                self._entries[entry.hash] = entry
        grants = [g for e in self._entries.values() if (g := kk.parse_grant(e)) is not None]
        self.book = kk.fold_grants(grants, leaders, ends)
        self.ceremonies = kc.fold_ceremonies(self._entries.values(), leaders, ends, members)
        self._open_grants()

    def _open_grants(self) -> None:
        for grant in self.book.grants:
            if grant.hash in self._tried or grant.recipient in self._keys:
                continue
            if grant.to == self.me:
                identity: Any = self._ssh
                source = "grant"
            elif grant.to is None and grant.split in self._masters:
                identity, source = self._masters[grant.split], "master"
            else:
                continue
            self._tried.add(grant.hash)
            plaintext = _decrypt_map(grant.sealed, identity)
            secret = kk.secret_of_grant(grant, plaintext) if plaintext is not None else None
            opened = identity_of(secret) if secret is not None else None
            if opened is None or str(opened.to_public()) != grant.recipient:
                continue  # a grant that does not open for us is nobody's key here
            self._keys[grant.recipient] = RoleKey(
                grant.role, grant.generation, grant.recipient, source, opened
            )

    # What this node holds

    def held(self) -> set[str]:
        """The recipients whose secret halves this node holds."""
        return set(self._keys)

    def key(self, recipient: str) -> RoleKey | None:
        return self._keys.get(recipient)

    def role_keys(self) -> list[RoleKey]:
        return sorted(self._keys.values(), key=lambda k: (k.role, k.generation, k.recipient))

    @property
    def master_in_memory(self) -> bool:
        return bool(self._masters)

    def take_master(self, split: bytes, identity: pyrage.x25519.Identity) -> int:
        """Hold a reconstructed master key (in memory only) and open every role key
        granted to it; how many role keys that added."""
        before = len(self._keys)
        self._masters[split] = identity
        self._tried -= {g.hash for g in self.book.grants if g.to is None}
        self._open_grants()
        return len(self._keys) - before

    # Sealing and opening

    def seal(self, author: bytes, kind: str, role: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The envelope that seals `payload` for `role`'s latest key (its public half
        comes from the grants: sealing needs no secret). `UsageError` for a role that
        does not exist or has no key yet, or a payload no entry could carry."""
        if role not in self.roles:
            names = ", ".join(sorted(self.roles.by_name))
            raise UsageError(f"--seal-for {role!r}: no such role (roles: {names})")
        latest = self.book.latest(role)
        if latest is None:
            raise UsageError(no_key_message(role))
        try:
            plaintext = inner_plaintext(author, kind, role, payload)
        except EntryError as error:
            raise UsageError(f"--data: {error}") from None
        ciphertext = seal_to_recipient(latest.recipient, plaintext)
        return envelope_body(Envelope(role, latest.generation, latest.recipient, ciphertext))

    def open(self, entry: Entry) -> Opened:
        """How this node reads an entry's body. Never raises."""
        envelope = parse_envelope(entry.body)
        if envelope is None:
            return Opened(PLAIN, payload=payload_map(entry.body))
        key = self._keys.get(envelope.recipient)
        if key is None:
            return not_open(SEALED, envelope)
        if key.role != envelope.role:
            return not_open(MISMATCH, envelope, "sealed to a key of another role")
        try:
            plaintext = pyrage.decrypt(envelope.ciphertext, [key.identity])
        except Exception:
            return not_open(DAMAGED, envelope, "the ciphertext does not decrypt")
        return check_opened(plaintext, entry.author, entry.kind, envelope)

    # Shares

    def open_share(self, split: kc.Split) -> str | None:
        """This node's share of a split, if it holds one that opens."""
        if self.me not in split.holders:
            return None
        sealed = split.shares[split.holders.index(self.me)]
        plaintext = _decrypt_map(sealed, self._ssh)
        if plaintext is None:
            return None
        return kc.share_of(plaintext, kc.SPLIT, split.author, self.me, split.recipient)

    def open_release(self, release: kc.Release, request: kc.Request) -> str | None:
        """A share a holder released to this node for `request`, if it opens."""
        if request.requester != self.me:
            return None
        plaintext = _decrypt_map(release.sealed, self._ssh)
        if plaintext is None:
            return None
        return kc.share_of(plaintext, kc.RELEASED, release.holder, self.me, request.hash)

    def status_json(self, names: Mapping[bytes, str]) -> dict[str, Any]:
        """Every role's generations, which of them this node holds, and the split."""
        roles = []
        for role in sorted(self.roles.by_name):
            for generation in self.book.of_role(role):
                key = self._keys.get(generation.recipient)
                roles.append(
                    {
                        "role": role,
                        "generation": generation.generation,
                        "recipient": generation.recipient,
                        "term": generation.term,
                        "held": key is not None,
                        "source": key.source if key is not None else None,
                        "grantees": len(self.book.holders.get(generation.recipient, ())),
                    }
                )
        current = self.ceremonies.current
        return {
            "agent": self.me.hex(),
            "role_keys": roles,
            "split": None
            if current is None
            else {
                "entry": current.hash.hex(),
                "threshold": current.threshold,
                "holders": [
                    {"id": h.hex(), "name": names.get(h), "me": h == self.me}
                    for h in current.holders
                ],
                "recipient": current.recipient,
            },
            "master_in_memory": self.master_in_memory,
            "ceremonies": kc.ceremony_json(self.ceremonies, names),
            "ignored_grants": len(self.book.ignored),
        }


def key_entries(store: EventStore) -> list[Entry]:
    """Every key entry a store holds (damaged rows skipped: the audit reports them)."""
    return [entry for _, entry in entries_of_kinds(store, KINDS)]


def offline_keyring(
    store: EventStore,
    me: bytes,
    ssh_private_pem: bytes,
    roles: Roles,
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
    members: Iterable[bytes] | None = None,
) -> Keyring:
    """The keyring the logs of a store give this node, without a running agent."""
    keyring = Keyring(me, ssh_private_pem, roles)
    keyring.update(key_entries(store), leaders, ends, members)
    return keyring
