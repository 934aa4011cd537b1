"""The admin key's ceremonies, folded from the logs: its split into shares (SLIP-39,
k of n), and each reconstruction (a request, the holders' consents, the outcome).

- `key.split` (the admin, naming its term): the holders, the threshold, the master
  key's public half (its *recipient*: the commitment a reconstruction is checked
  against) and each holder's share sealed to that holder's agent key.
- `key.reconstruct_requested` (any member): which split, and why.
- `key.share_released` (a holder): its share, sealed to the requester. A holder's
  consent is this entry; one per holder counts.
- `key.reconstructed` (the requester): whether the shares rebuilt the master, whose
  shares were used, and why it was asked for. Written in both cases: success, and
  shares that combine to something else than the commitment.

Shares travel sealed and bound to their entry (sign, then encrypt): a plaintext names
its kind, its author and who it is for. Pure rules; nothing here raises on hostile
bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.entry import Entry
from bzzz.domain.keys import admin_problem
from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.domain.payload import payload_map
from bzzz.domain.sealing import MAX_RECIPIENT_CHARS

SPLIT = "key.split"
REQUESTED = "key.reconstruct_requested"
RELEASED = "key.share_released"
RECONSTRUCTED = "key.reconstructed"
KINDS = (SPLIT, REQUESTED, RELEASED, RECONSTRUCTED)
MAX_HOLDERS = 16  # SLIP-39's most shares in a group
MIN_THRESHOLD = 2
MAX_REASON = 500
MAX_SHARE_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Split:
    hash: bytes
    author: bytes
    term: int
    threshold: int
    holders: tuple[bytes, ...]
    recipient: str
    shares: tuple[bytes, ...]  # sealed, parallel to holders
    lamport: int
    ts: int


@dataclass(frozen=True, slots=True)
class Release:
    hash: bytes
    holder: bytes
    request: bytes
    sealed: bytes
    lamport: int


@dataclass(frozen=True, slots=True)
class Outcome:
    hash: bytes
    ok: bool
    holders: tuple[bytes, ...]
    problem: str
    ts: int


@dataclass
class Request:
    hash: bytes
    requester: bytes
    split: bytes
    reason: str
    ts: int
    lamport: int
    releases: dict[bytes, Release] = field(default_factory=dict)  # by holder, the first
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return any(o.ok for o in self.outcomes)


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry of the ceremonies that breaks a rule (for `bzzz audit`)."""

    author: bytes
    seq: int
    code: str
    why: str


@dataclass
class Ceremonies:
    splits: dict[bytes, Split] = field(default_factory=dict)
    requests: dict[bytes, Request] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Releases whose request this node does not hold (yet): replication order.
    waiting: int = 0

    @property
    def current(self) -> Split | None:
        """The latest split that counts: the one shares are released for."""
        if not self.splits:
            return None
        return max(self.splits.values(), key=lambda s: (s.lamport, s.hash))


def split_body(
    term: int, threshold: int, holders: list[bytes], recipient: str, shares: list[bytes]
) -> dict[str, Any]:
    return {
        "term": term,
        "threshold": threshold,
        "holders": holders,
        "recipient": recipient,
        "shares": shares,
    }


def request_body(split: bytes, reason: str) -> dict[str, Any]:
    return {"split": split, "reason": reason}


def release_body(request: bytes, split: bytes, sealed: bytes) -> dict[str, Any]:
    return {"request": request, "split": split, "sealed": sealed}


def outcome_body(
    request: bytes, split: bytes, reason: str, ok: bool, holders: list[bytes], problem: str
) -> dict[str, Any]:
    return {
        "request": request,
        "split": split,
        "reason": reason,
        "ok": ok,
        "holders": holders,
        "problem": problem,
    }


def share_plaintext(
    kind: str, author: bytes, to: bytes, about: bytes | str, share: str
) -> dict[str, Any]:
    """A share as sealed in `kind` by `author` for `to`; `about` is the master recipient
    (in a split) or the request's hash (in a release)."""
    return {"kind": kind, "author": author, "to": to, "about": about, "share": share}


def share_of(
    plaintext: Mapping[str, Any], kind: str, author: bytes, to: bytes, about: bytes | str
) -> str | None:
    """The share from a decrypted plaintext made for exactly this (kind, author, to,
    about); None for anything else."""
    expected = share_plaintext(kind, author, to, about, "")
    if set(plaintext) != set(expected):
        return None
    if any(plaintext[k] != v for k, v in expected.items() if k != "share"):
        return None
    share = plaintext["share"]
    return share if isinstance(share, str) and 0 < len(share) <= MAX_SHARE_CHARS else None


def check_split_request(
    holders: list[bytes], threshold: int, members: Iterable[bytes]
) -> str | None:
    """Why a split of the admin key among `holders` with `threshold` cannot be done."""
    if len(set(holders)) != len(holders):
        return "a holder is named twice"
    if not MIN_THRESHOLD <= threshold <= len(holders):
        return (
            f"the threshold must be from {MIN_THRESHOLD} to the number of holders "
            f"({len(holders)}); got {threshold}"
        )
    if len(holders) > MAX_HOLDERS:
        return f"at most {MAX_HOLDERS} holders (SLIP-39); got {len(holders)}"
    current = set(members)
    strangers = [h.hex()[:12] for h in holders if h not in current]
    if strangers:
        return f"not a member of the cluster: {', '.join(strangers)}"
    return None


def _hash(data: Mapping[str, Any], key: str) -> bytes | None:
    value = data.get(key)
    return value if isinstance(value, bytes) and len(value) == HASH_BYTES else None


def _keys(value: object) -> tuple[bytes, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_HOLDERS:
        return None
    if not all(isinstance(k, bytes) and len(k) == KEY_BYTES for k in value):
        return None
    return tuple(value)


def parse_split(entry: Entry) -> Split | str:
    data = payload_map(entry.body)
    if data is None:
        return "body is not a CBOR map"
    term, threshold = data.get("term"), data.get("threshold")
    holders, recipient, shares = (
        _keys(data.get("holders")),
        data.get("recipient"),
        data.get("shares"),
    )
    if type(term) is not int or term < 0 or type(threshold) is not int:
        return "term and threshold must be whole numbers"
    if holders is None or not isinstance(shares, list) or len(shares) != len(holders):
        return "holders (agent keys) and their sealed shares, one each"
    if not all(isinstance(s, bytes) and s for s in shares):
        return "each share must be sealed bytes"
    if not isinstance(recipient, str) or not 0 < len(recipient) <= MAX_RECIPIENT_CHARS:
        return "the master recipient must be text"
    if len(set(holders)) != len(holders) or not MIN_THRESHOLD <= threshold <= len(holders):
        return "holders must be distinct and the threshold from 2 to their number"
    return Split(
        entry.hash,
        entry.author,
        term,
        threshold,
        holders,
        recipient,
        tuple(shares),
        entry.lamport,
        entry.ts,
    )


def fold_ceremonies(
    entries: Iterable[Entry],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
    members: Iterable[bytes] | None = None,
) -> Ceremonies:
    """The ceremonies from every entry of `KINDS` (any order; others are skipped).
    `members`: the keys that are or were members, when known (a request by anyone else
    is a problem)."""
    known = set(members) if members is not None else None
    state = Ceremonies()
    ordered = sorted(
        (e for e in entries if e.kind in KINDS), key=lambda e: (e.lamport, e.author, e.seq)
    )
    later: list[Entry] = []
    for entry in ordered:
        if entry.kind == SPLIT:
            _split(state, entry, leaders, ends)
        elif entry.kind == REQUESTED:
            _request(state, entry, known)
        else:
            later.append(entry)
    # Releases and outcomes after every request: a release can carry a lower Lamport
    # clock than the request it names only if its author forged it, but it costs
    # nothing to judge them against every request held.
    for entry in later:
        if entry.kind == RELEASED:
            _release(state, entry)
        else:
            _outcome(state, entry)
    return state


def _problem(state: Ceremonies, entry: Entry, code: str, why: str) -> None:
    state.problems.append(Problem(entry.author, entry.seq, code, why))


def _split(
    state: Ceremonies, entry: Entry, leaders: Mapping[int, bytes], ends: Mapping[int, int]
) -> None:
    split = parse_split(entry)
    if isinstance(split, str):
        _problem(state, entry, "key-malformed", f"{SPLIT}: {split}")
        return
    problem = admin_problem(entry.author, split.term, entry.lamport, leaders, ends)
    if problem is not None:
        _problem(state, entry, "key-not-admin", f"{SPLIT}: {problem}")
        return
    state.splits[split.hash] = split


def _request(state: Ceremonies, entry: Entry, known: set[bytes] | None) -> None:
    data = payload_map(entry.body)
    split = _hash(data, "split") if data is not None else None
    reason = data.get("reason") if data is not None else None
    if split is None or not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON:
        _problem(state, entry, "key-malformed", f"{REQUESTED}: a split's hash and a reason")
        return
    if known is not None and entry.author not in known:
        _problem(state, entry, "key-not-member", f"{REQUESTED}: by a key that is no member")
        return
    if split not in state.splits:
        _problem(state, entry, "key-unknown-split", f"{REQUESTED}: names no split that counts")
        return
    state.requests[entry.hash] = Request(
        entry.hash, entry.author, split, reason, entry.ts, entry.lamport
    )


def _release(state: Ceremonies, entry: Entry) -> None:
    data = payload_map(entry.body)
    request = _hash(data, "request") if data is not None else None
    split = _hash(data, "split") if data is not None else None
    sealed = data.get("sealed") if data is not None else None
    if request is None or split is None or not isinstance(sealed, bytes) or not sealed:
        _problem(state, entry, "key-malformed", f"{RELEASED}: a request, a split and a share")
        return
    asked = state.requests.get(request)
    if asked is None:
        state.waiting += 1
        return
    if asked.split != split:
        _problem(state, entry, "key-malformed", f"{RELEASED}: names another split than its request")
        return
    if entry.author not in state.splits[split].holders:
        _problem(
            state,
            entry,
            "key-not-holder",
            f"{RELEASED}: released by a key that holds no share of split {split.hex()[:12]}",
        )
        return
    asked.releases.setdefault(
        entry.author, Release(entry.hash, entry.author, request, sealed, entry.lamport)
    )


def _outcome(state: Ceremonies, entry: Entry) -> None:
    data = payload_map(entry.body)
    request = _hash(data, "request") if data is not None else None
    ok, problem = (data.get("ok"), data.get("problem")) if data is not None else (None, None)
    holders = _keys(data.get("holders")) if data is not None else None
    if request is None or not isinstance(ok, bool) or holders is None:
        _problem(state, entry, "key-malformed", f"{RECONSTRUCTED}: a request, ok and holders")
        return
    asked = state.requests.get(request)
    if asked is None:
        state.waiting += 1
        return
    if entry.author != asked.requester:
        _problem(state, entry, "key-not-requester", f"{RECONSTRUCTED}: not by its requester")
        return
    threshold = state.splits[asked.split].threshold
    if ok and (len(set(holders)) < threshold or not set(holders) <= set(asked.releases)):
        _problem(
            state,
            entry,
            "key-short-consent",
            f"{RECONSTRUCTED}: claims success with fewer than {threshold} released shares",
        )
        return
    text = problem if isinstance(problem, str) else ""
    asked.outcomes.append(Outcome(entry.hash, ok, holders, text[:MAX_REASON], entry.ts))


def ceremony_json(state: Ceremonies, names: Mapping[bytes, str]) -> list[dict[str, Any]]:
    """Every split and reconstruction, oldest first: what `bzzz audit` and `bzzz keys
    status` list."""
    rows: list[dict[str, Any]] = []
    for split in sorted(state.splits.values(), key=lambda s: (s.lamport, s.hash)):
        rows.append(
            {
                "ceremony": "split",
                "entry": split.hash.hex(),
                "by": split.author.hex(),
                "by_name": names.get(split.author),
                "ts": split.ts,
                "term": split.term,
                "threshold": split.threshold,
                "holders": [h.hex() for h in split.holders],
                "holder_names": [names.get(h) for h in split.holders],
                "recipient": split.recipient,
                "current": split is state.current,
            }
        )
    for request in sorted(state.requests.values(), key=lambda r: (r.lamport, r.hash)):
        split = state.splits[request.split]
        last = request.outcomes[-1] if request.outcomes else None
        success = next((o for o in request.outcomes if o.ok), None)
        shown = success or last
        status = (
            "reconstructed"
            if success
            else "refused"
            if last is not None
            else f"waiting ({len(request.releases)} of {split.threshold} consents)"
        )
        rows.append(
            {
                "ceremony": "reconstruct",
                "entry": request.hash.hex(),
                "by": request.requester.hex(),
                "by_name": names.get(request.requester),
                "ts": request.ts,
                "split": request.split.hex(),
                "reason": request.reason,
                "consents": [h.hex() for h in sorted(request.releases)],
                "threshold": split.threshold,
                "status": status,
                "used": [h.hex() for h in shown.holders] if shown is not None else [],
                "problem": last.problem if last is not None and not last.ok else None,
            }
        )
    return rows
