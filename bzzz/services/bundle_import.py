"""`bzzz log import`: store a bundle's entries, verified, and only those of the cluster's
members. The file is read in chunks, as often as admissions in it require: a log whose
admission comes later in the file is taken on the next pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bzzz.domain.entry import Entry
from bzzz.domain.membership import KINDS, Membership
from bzzz.domain.roles import Roles
from bzzz.errors import UsageError
from bzzz.projections.membership import NOT_MEMBER, of_members, read_membership
from bzzz.store import EventStore
from bzzz.store.bundle import bundle_cluster, read_bundle
from bzzz.store.ingest import IngestReport, Refusal

CHUNK = 10_000


@dataclass
class ImportResult:
    accepted: int = 0
    duplicates: int = 0
    forks: list[Entry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def add(self, report: IngestReport) -> None:
        self.accepted += len(report.accepted)
        self.duplicates += report.duplicates
        self.forks += report.forks
        self.refused += report.refused


def import_bundle(
    store: EventStore, roles: Roles, cluster_id: bytes | None, path: Path
) -> ImportResult:
    """Import `path` into `store`. A node of no cluster keeps any log; a node of a
    cluster refuses the logs of keys that never were its members, and a bundle that
    names another cluster altogether."""
    named = bundle_cluster(path)
    if cluster_id is not None and named is not None and named != cluster_id:
        raise UsageError(
            f"{path} holds the logs of cluster {named.hex()[:12]}, and this node is in "
            f"cluster {cluster_id.hex()[:12]}: nothing imported"
        )
    result = ImportResult()
    if cluster_id is None:
        for chunk in _chunks(path):
            result.add(store.ingest(chunk))
        return result
    members = read_membership(store, roles, cluster_id)
    retry: set[bytes] | None = None  # the logs held back in the last pass
    while True:
        held: dict[bytes, int] = {}
        for chunk in _chunks(path):
            report = store.ingest(chunk, _offered(members, cluster_id, retry, held))
            for entry in report.unwanted:
                if retry is None or entry.author in retry:
                    held[entry.author] = held.get(entry.author, 0) + 1
            report.unwanted = []
            result.add(report)
            if any(e.kind in KINDS for e in report.accepted):
                members = read_membership(store, roles, cluster_id)
        if not any(members.ever_member(author) for author in held):
            break
        retry = set(held)
    result.refused += [
        Refusal(
            author,
            None,
            NOT_MEMBER,
            f"{count} entries by {author.hex()[:12]}, a key that is not and never was a "
            "member of this cluster",
        )
        for author, count in held.items()
    ]
    return result


def _offered(
    members: Membership, cluster_id: bytes, retry: set[bytes] | None, held: dict[bytes, int]
) -> Callable[[Entry], bool]:
    """What a pass stores: the members' entries, but not the rest of a log held back
    earlier in the pass (it would not link), and on a later pass only the logs the pass
    before held back (the others are stored already)."""
    wanted = of_members(members, cluster_id)

    def offered(entry: Entry) -> bool:
        if entry.author in held or (retry is not None and entry.author not in retry):
            return False
        return wanted(entry)

    return offered


def _chunks(path: Path) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for raw in read_bundle(path):
        chunk.append(raw)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
