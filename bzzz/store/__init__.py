"""The event store: every author's log, heads, fork evidence and the notification log."""

from bzzz.store.event_store import EventStore
from bzzz.store.ingest import IngestReport, Refusal
from bzzz.store.records import StoredEntry, StoredHead

__all__ = ["EventStore", "IngestReport", "Refusal", "StoredEntry", "StoredHead"]
