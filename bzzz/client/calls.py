"""UCXI's calls, once for both clients: what each sends (`Call`) and how its answer
reads (`parse_*`), with the answers as dataclasses. No I/O here."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bzzz.errors import UcxiError

PREFIX = "/ucxi/v1"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a piece of context (`GET /ucxi/v1/resolve`)."""

    address: str  # with ~vN
    latest: str  # with ~latest
    version: int
    versions: int
    author: str
    author_name: str | None
    seq: int
    ts: int
    kind: str
    hash: str
    text: str
    sealed_for: str | None = None  # the role it is sealed for (opened by the node)
    superseded_by: str | None = None  # the hash of the version that superseded it
    links: list[Mapping[str, str | None]] = field(default_factory=list)  # {"task", "thread"}
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields newer servers add


@dataclass(frozen=True, slots=True)
class History:
    address: str
    versions: list[Version]
    more: int


@dataclass(frozen=True, slots=True)
class Found:
    pattern: str
    found: list[Version]
    more: int
    hidden: dict[str, int] = field(default_factory=dict)  # sealed-for role -> versions


@dataclass(frozen=True, slots=True)
class Written:
    version: Version | None  # None: sealed for a role the node cannot read
    entry: str | None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


_REQUIRED = (
    "address",
    "latest",
    "version",
    "versions",
    "author",
    "author_name",
    "seq",
    "ts",
    "kind",
    "hash",
    "text",
)
_OPTIONAL = ("sealed_for", "superseded_by", "links")


def _bad(what: str) -> UcxiError:
    return UcxiError(200, f"the server's answer is not UCXI's: {what}")


def _map(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _bad(f"{what} is not an object")
    return data


def parse_version(data: Any) -> Version:
    row = _map(data, "a version")
    try:
        known = {name: row[name] for name in _REQUIRED}
    except KeyError as missing:
        raise _bad(f"a version has no {missing}") from None
    known.update({name: row[name] for name in _OPTIONAL if row.get(name) is not None})
    extra = {k: v for k, v in row.items() if k not in known and k != "readable"}
    return Version(**known, extra=extra)


def parse_history(data: Any) -> History:
    row = _map(data, "a history")
    versions = row.get("versions")
    if not isinstance(versions, list):
        raise _bad("versions is not a list")
    return History(str(row.get("address")), [parse_version(v) for v in versions], _int(row))


def parse_found(data: Any) -> Found:
    row = _map(data, "a search")
    found = row.get("found")
    if not isinstance(found, list):
        raise _bad("found is not a list")
    hidden = {
        h["sealed_for"]: h["versions"]
        for h in row.get("hidden") or []
        if isinstance(h, Mapping) and isinstance(h.get("sealed_for"), str)
    }
    return Found(str(row.get("pattern")), [parse_version(v) for v in found], _int(row), hidden)


def parse_written(data: Any) -> Written:
    row = _map(data, "a write")
    version = row.get("version")
    entry = row.get("entry")
    return Written(
        parse_version(version) if version is not None else None,
        entry if isinstance(entry, str) else None,
    )


def parse_object(data: Any) -> dict[str, Any]:
    return dict(_map(data, "the answer"))


def _int(row: Mapping[str, Any]) -> int:
    more = row.get("more", 0)
    if type(more) is not int:
        raise _bad("more is not a number")
    return more


def resolve(address: str) -> Call[Version]:
    return Call("GET", f"{PREFIX}/resolve", parse_version, {"address": address})


def history(address: str, limit: int) -> Call[History]:
    params: dict[str, str | int] = {"address": address, "limit": limit}
    return Call("GET", f"{PREFIX}/history", parse_history, params)


def search(pattern: str, limit: int) -> Call[Found]:
    return Call("GET", f"{PREFIX}/search", parse_found, {"pattern": pattern, "limit": limit})


def put(address: str, text: str, decision: bool, seal_for: str | None) -> Call[Written]:
    body = {"address": address, "text": text, "decision": decision, "seal_for": seal_for}
    return Call("POST", f"{PREFIX}/context", parse_written, body=body)


def read(name: str) -> Call[dict[str, Any]]:
    """`status`, `tasks` or `threads`."""
    return Call("GET", f"{PREFIX}/{name}", parse_object)


def error_of(status: int, body: bytes) -> UcxiError:
    """The error a non-2xx answer stands for: the server's message when it sent one."""
    try:
        message = json.loads(body).get("error")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message:
        message = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
    return UcxiError(status, message)
