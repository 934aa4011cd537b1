"""The audit's result: a stable JSON interface (`ok`, `logs`, `entries`, `findings`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bzzz.domain.audit_rules import Finding
from bzzz.domain.chain import Head


@dataclass
class AuditReport:
    source: str
    mode: str
    logs: int = 0
    entries: int = 0
    findings: list[Finding] = field(default_factory=list)
    # The last entry of every log as the audit found it, for `--against`.
    heads: dict[bytes, Head] = field(default_factory=dict)
    # Who led which term, as the logs prove it (stores audited whole; None otherwise).
    leadership: dict[str, object] | None = None
    # The admin key's ceremonies (splits, reconstructions), oldest first (stores audited
    # whole; None otherwise).
    ceremonies: list[dict[str, object]] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "source": self.source,
            "mode": self.mode,
            "logs": self.logs,
            "entries": self.entries,
            "findings": [f.as_json() for f in self.sorted_findings()],
            "leadership": self.leadership,
            "ceremonies": self.ceremonies,
            "seconds": round(self.seconds, 3),
        }

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (f.author or "", f.seq or 0, f.code))
