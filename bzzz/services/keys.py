"""Role keys and the admin key's ceremonies, on every node.

- **Every node** keeps its keyring (`bzzz.projections.keyring`) folded from the key
  entries and the proven leaders, seals and opens with it, releases its share of the
  admin key when its person says so (`release`), and, as a requester, rebuilds the
  master key in memory once enough holders released their shares (`reconstruct_owed`).
- **The admin** (the leader of a proven, leased term), and only it, grants role keys:
  what `bzzz.domain.keys.plan_keys` says is owed (first keys, rotations after a member
  lost access, grants to members who lack a generation, grants to the master), in
  entries naming its term. It alone splits the admin key (`split`): the master secret
  is generated for the split, sealed share by share to the holders, and dropped.

Secrets never leave memory: no role key, share or master secret is logged or written
in the clear; the log holds them only sealed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import cbor2
import pyrage
import shamir_mnemonic  # type: ignore[import-untyped,unused-ignore]

from bzzz.clock import now_ms
from bzzz.domain import key_ceremony as kc
from bzzz.domain import keys as kk
from bzzz.domain import membership as ms
from bzzz.domain.age_identity import age_identity_text
from bzzz.domain.entry import Entry
from bzzz.domain.leadership import LEADER
from bzzz.domain.sealing import Opened
from bzzz.errors import UsageError
from bzzz.projections.keyring import (
    KINDS,
    Keyring,
    identity_of,
    new_role_key,
    seal_to_agent,
    seal_to_recipient,
)
from bzzz.services.background import AdminRounds
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica

log = logging.getLogger("bzzz.keys")
TICK_S = 1.0  # how often the keys are looked at without news
ENTRIES_PER_BATCH = 50
MAX_COMBINATIONS = 200  # of released shares tried against the commitment
MASTER_BYTES = 32


class KeyService(AdminRounds):
    def __init__(self, replica: Replica, election: ElectionRunner, keyring: Keyring) -> None:
        self.replica = replica
        self.election = election
        self.keyring = keyring
        super().__init__("keys", log, replica.watch((*KINDS, *ms.KINDS, LEADER)), TICK_S)
        self._feed = replica.feed(KINDS)
        self._reading = asyncio.Lock()
        self._folded: tuple[object, ...] | None = None
        self._tried: dict[bytes, int] = {}  # request -> releases it was last tried with
        self.granted = 0  # grant entries written, for status and tests

    # Reading the logs

    async def refresh(self) -> None:
        """Fold what arrived into the keyring, with the leaders the logs prove."""
        async with self._reading:
            fresh = await self._feed.fresh()
            proof = await self.election.leadership()
            leaders = {term: p.leader for term, p in proof.proven.items()}
            ends = proof.ends()
            membership = self.replica.membership
            folded = (leaders, ends, id(membership))
            if not fresh and folded == self._folded:
                return
            self._folded = folded
            members = [*membership.members, *membership.removed]
            self.keyring.update(fresh, leaders, ends, members)

    async def _term_led(self) -> int | None:
        """The term this node leads, proven by the logs and leased; None otherwise."""
        e = self.election.election
        if e.leader != self.replica.me or not e.has_lease(now_ms()):
            return None
        term = e.term
        return term if await self.election.proven_leader() == self.replica.me else None

    async def _round(self) -> None:
        await self.refresh()
        if self._admin.is_set():
            await self.grant_owed()
        await self.reconstruct_owed()

    # The admin's duty: grants

    async def grant_owed(self) -> int:
        """Write the grants and rotations owed, as the admin of a proven leased term;
        how many grant entries were written."""
        term = await self._term_led()
        if term is None:
            return 0
        keyring, me = self.keyring, self.replica.me
        split = keyring.ceremonies.current
        plan = kk.plan_keys(
            keyring.book,
            self.replica.membership,
            self.replica.roles,
            keyring.held(),
            split.hash if split is not None else None,
        )
        if not plan:
            return 0
        items: list[tuple[str, dict[str, Any]]] = []
        for rotation in plan.rotations:
            identity, recipient = new_role_key()
            log.info(
                "role %s: new key, generation %d (%s)",
                rotation.role,
                rotation.generation,
                rotation.reason,
            )
            secret = str(identity)
            grants = [
                kk.GrantDue(rotation.role, rotation.generation, recipient, member)
                for member in rotation.to
            ]
            if split is not None:
                grants.append(
                    kk.GrantDue(rotation.role, rotation.generation, recipient, None, split.hash)
                )
            items += [_grant(me, term, due, secret, split) for due in grants]
        for due in plan.grants:
            key = keyring.key(due.recipient)
            if key is not None:
                items.append(_grant(me, term, due, str(key.identity), split))
        written = 0
        for start in range(0, len(items), ENTRIES_PER_BATCH):
            if await self._term_led() != term:
                log.warning("lost the lease while granting role keys; stopping")
                break
            batch = items[start : start + ENTRIES_PER_BATCH]
            await self.replica.append_many(batch)
            written += len(batch)
        self.granted += written
        if written:
            log.info("granted %d role keys in term %d", written, term)
        await self.refresh()
        return written

    # The admin key: split

    async def split(self, holders: list[bytes], threshold: int) -> dict[str, Any]:
        """Split a new master key among `holders` (k of n, SLIP-39), each share sealed to
        its holder; the master secret exists only during this call."""
        await self.refresh()
        term = await self._term_led()
        if term is None:
            raise UsageError(
                "only the admin splits the admin key, and this node is not the admin now "
                "(`bzzz election status` names it): run this on the admin's node"
            )
        problem = kc.check_split_request(holders, threshold, self.replica.membership.members)
        if problem is not None:
            raise UsageError(f"--holders/--threshold: {problem}")
        me = self.replica.me
        secret = os.urandom(MASTER_BYTES)
        master = pyrage.x25519.Identity.from_str(age_identity_text(secret))
        recipient = str(master.to_public())
        words = shamir_mnemonic.generate_mnemonics(1, [(threshold, len(holders))], secret)[0]
        del secret, master  # the master lives on only in the shares
        shares = [
            seal_to_agent(holder, kc.share_plaintext(kc.SPLIT, me, holder, recipient, share))
            for holder, share in zip(holders, words, strict=True)
        ]
        del words
        body = kc.split_body(term, threshold, holders, recipient, shares)
        entry = await self.replica.append(kc.SPLIT, body, first=holders)
        log.info(
            "admin key split %s: %d of %d holders", entry.hash.hex()[:12], threshold, len(holders)
        )
        await self.refresh()
        self._news.set()  # the master's grants are owed now
        return {
            "split": entry.hash.hex(),
            "threshold": threshold,
            "holders": [h.hex() for h in holders],
            "recipient": recipient,
        }

    # The admin key: reconstruction

    async def request_reconstruct(self, reason: str) -> dict[str, Any]:
        """Ask the holders of the current split for their shares, saying why."""
        await self.refresh()
        split = self.keyring.ceremonies.current
        if split is None:
            raise UsageError(
                "the admin key was never split: `bzzz keys split` on the admin's node first"
            )
        reason = " ".join(reason.split())
        if not 0 < len(reason) <= kc.MAX_REASON:
            raise UsageError(f"--reason: say why, in 1 to {kc.MAX_REASON} characters")
        if self.replica.me not in self.replica.membership.members:
            raise UsageError("this node is not a member of the cluster")
        entry = await self.replica.append(
            kc.REQUESTED, kc.request_body(split.hash, reason), first=split.holders
        )
        await self.refresh()
        return {
            "request": entry.hash.hex(),
            "split": split.hash.hex(),
            "threshold": split.threshold,
            "holders": [h.hex() for h in split.holders],
        }

    def find_request(self, text: str) -> kc.Request:
        """The request a hex id (or a unique prefix of at least 8 digits) names."""
        wanted = text.strip().lower()
        if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
            raise UsageError(f"{text[:80]!r}: give a request's entry id (at least 8 hex digits)")
        found = [
            r for h, r in self.keyring.ceremonies.requests.items() if h.hex().startswith(wanted)
        ]
        if not found:
            raise UsageError(
                f"no reconstruction request {wanted[:16]} in this node's logs (`bzzz keys status`)"
            )
        if len(found) > 1:
            raise UsageError(f"{wanted} starts several requests' ids; give more digits")
        return found[0]

    async def release(self, request_id: str) -> dict[str, Any]:
        """Consent to a reconstruction: this holder's share, sealed to the requester."""
        await self.refresh()
        request = self.find_request(request_id)
        split = self.keyring.ceremonies.splits[request.split]
        me = self.replica.me
        if me not in split.holders:
            raise UsageError(
                f"this node holds no share of split {split.hash.hex()[:12]}, which request "
                f"{request.hash.hex()[:12]} asks for"
            )
        if request.done:
            raise UsageError(f"request {request.hash.hex()[:12]} was already reconstructed")
        if me in request.releases:
            return {"request": request.hash.hex(), "released": False, "already": True}
        share = self.keyring.open_share(split)
        if share is None:
            raise UsageError(
                f"this node's share of split {split.hash.hex()[:12]} does not open with its "
                "agent key"
            )
        sealed = seal_to_agent(
            request.requester,
            kc.share_plaintext(kc.RELEASED, me, request.requester, request.hash, share),
        )
        del share
        body = kc.release_body(request.hash, split.hash, sealed)
        entry = await self.replica.append(kc.RELEASED, body, first=[request.requester])
        log.info(
            "released our share for request %s by %s (%s)",
            request.hash.hex()[:12],
            request.requester.hex()[:12],
            request.reason,
        )
        await self.refresh()
        return {"request": request.hash.hex(), "released": True, "entry": entry.hash.hex()}

    async def reconstruct_owed(self) -> list[bytes]:
        """For each of this node's open requests with enough consents not yet tried:
        combine the shares in memory, check them against the split's commitment, and
        record the outcome. The requests that succeeded."""
        done: list[bytes] = []
        for request in list(self.keyring.ceremonies.requests.values()):
            if request.requester != self.replica.me or request.done:
                continue
            split = self.keyring.ceremonies.splits[request.split]
            count = len(request.releases)
            if count < split.threshold or self._tried.get(request.hash) == count:
                continue
            self._tried[request.hash] = count
            if await self._reconstruct(request, split):
                done.append(request.hash)
        return done

    async def _reconstruct(self, request: kc.Request, split: kc.Split) -> bool:
        opened = {
            holder: share
            for holder, release in sorted(request.releases.items())
            if (share := self.keyring.open_release(release, request)) is not None
        }
        result = rebuild_master(opened, split.threshold, split.recipient)
        if isinstance(result, str):
            body = kc.outcome_body(
                request.hash, split.hash, request.reason, False, sorted(request.releases), result
            )
            await self.replica.append(kc.RECONSTRUCTED, body)
            log.error("reconstruction of %s refused: %s", request.hash.hex()[:12], result)
            await self.refresh()
            return False
        identity, used = result
        added = self.keyring.take_master(split.hash, identity)
        body = kc.outcome_body(request.hash, split.hash, request.reason, True, used, "")
        await self.replica.append(kc.RECONSTRUCTED, body)
        log.warning(
            "admin key reconstructed in memory for request %s (%s): %d role keys opened",
            request.hash.hex()[:12],
            request.reason,
            added,
        )
        await self.refresh()
        self._news.set()  # as admin, the keys it now holds may be owed to members
        return True

    async def wait_outcome(self, request: bytes, timeout: float) -> dict[str, Any] | None:
        """The request's latest outcome once there is one, or None after `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.refresh()
            await self.reconstruct_owed()
            asked = self.keyring.ceremonies.requests.get(request)
            if asked is not None and asked.outcomes:
                last = next((o for o in asked.outcomes if o.ok), asked.outcomes[-1])
                return {
                    "ok": last.ok,
                    "problem": last.problem or None,
                    "used": [h.hex() for h in last.holders],
                    "recipient": self.keyring.ceremonies.splits[asked.split].recipient,
                    "role_keys": len(self.keyring.role_keys()),
                }
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.1)

    # Sealing and reading

    async def seal(self, kind: str, payload: dict[str, Any], role: str) -> dict[str, Any]:
        """The envelope body sealing `payload` for `role` as an entry of `kind` by us."""
        await self.refresh()
        return self.keyring.seal(self.replica.me, kind, role, payload)

    async def append_sealed(
        self, kind: str, payload: dict[str, Any], role: str, first: Iterable[bytes] = ()
    ) -> Entry:
        """Append an entry whose body is sealed for `role`: for any service (HMMM,
        decisions) that writes content only a role may read."""
        return await self.replica.append(kind, await self.seal(kind, payload, role), first)

    def open(self, entry: Entry) -> Opened:
        return self.keyring.open(entry)

    async def status(self) -> dict[str, Any]:
        await self.refresh()
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        return {**self.keyring.status_json(names), "admin": self._admin.is_set()}


def _grant(
    me: bytes, term: int, due: kk.GrantDue, secret: str, split: kc.Split | None
) -> tuple[str, dict[str, Any]]:
    plaintext = kk.grant_plaintext(me, due.role, due.generation, due.recipient, due.to, secret)
    if due.to is not None:
        sealed = seal_to_agent(due.to, plaintext)
    else:
        assert split is not None and due.split == split.hash
        sealed = seal_to_recipient(split.recipient, _canonical(plaintext))
    body = kk.grant_body(term, due.role, due.generation, due.recipient, due.to, sealed, due.split)
    return kk.GRANTED, body


def _canonical(data: Mapping[str, Any]) -> bytes:
    encoded: bytes = cbor2.dumps(dict(data), canonical=True)
    return encoded


def rebuild_master(
    shares: Mapping[bytes, str], threshold: int, recipient: str
) -> tuple[pyrage.x25519.Identity, list[bytes]] | str:
    """The master key the shares rebuild, checked against the split's commitment (its
    recipient), with the holders whose shares did it; or why not. Exactly `threshold`
    shares are combined at a time (SLIP-39 refuses more), trying each combination of
    those released, so one bad share does not spoil the others."""
    if len(shares) < threshold:
        return f"only {len(shares)} of the released shares open; {threshold} are needed"
    combined_elsewhere = False
    holders = sorted(shares)
    for n, chosen in enumerate(itertools.combinations(holders, threshold)):
        if n >= MAX_COMBINATIONS:
            break
        try:
            secret = shamir_mnemonic.combine_mnemonics([shares[h] for h in chosen])
        except (shamir_mnemonic.MnemonicError, ValueError):
            continue
        identity = identity_of(age_identity_text(secret)) if len(secret) == MASTER_BYTES else None
        del secret
        if identity is not None and str(identity.to_public()) == recipient:
            return identity, list(chosen)
        combined_elsewhere = True
    if combined_elsewhere:
        return "the released shares rebuild another key than the one the split committed to"
    return "the released shares do not combine (SLIP-39 refused them)"
