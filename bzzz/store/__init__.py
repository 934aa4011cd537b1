"""The event store: every author's log, heads, fork evidence and the notification log."""

from bzzz.store.event_store import EventStore, IngestReport, Refusal, StoredEntry, StoredHead

__all__ = ["EventStore", "IngestReport", "Refusal", "StoredEntry", "StoredHead"]
