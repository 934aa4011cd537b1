"""`bzzz audit`: verify logs in a store or a bundle, and compare against another copy."""

from bzzz.audit.report import AuditReport
from bzzz.audit.runner import audit_bundle, audit_store

__all__ = ["AuditReport", "audit_bundle", "audit_store"]
