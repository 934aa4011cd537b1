"""SLURP on the elected admin: curating shared context (`bzzz.domain.slurp`).

Every node keeps the decisions and the SLURP acts its store holds (a feed); the admin
(the leader of a proven, leased term), and only it, looks at them every `TICK_S` and on
news (a decision, an act, a new leader, a change of the board), and appends the acts
owed (`context.linked`, `context.superseded`) in batches naming its term. The acts of
every proven leader count, so a new admin, or one restarted, owes only what no admin
recorded. Role key grants and rotations, the admin's other standing duty, are
`bzzz.services.keys`'.

Only plain decisions are curated: the acts are written in the clear, and the fold here
opens no sealed entry (a sealed decision's task and path stay sealed).
"""

from __future__ import annotations

import logging

from bzzz.clock import now_ms
from bzzz.domain import context as cx
from bzzz.domain import slurp as sl
from bzzz.domain.entry import Entry
from bzzz.domain.leadership import LEADER
from bzzz.domain.roles import can_make_decisions
from bzzz.services.background import AdminRounds
from bzzz.services.board import BoardService
from bzzz.services.election import ElectionRunner
from bzzz.services.hmmm import HmmmService
from bzzz.services.ports import Replica

log = logging.getLogger("bzzz.slurp")
TICK_S = 1.0  # how often the admin looks again without news
ENTRIES_PER_BATCH = 50
WATCHED = (cx.DECISION, *sl.KINDS)
# The fold here compares addresses with each other only (acts name entry hashes), so
# any project will do; the cluster's label may not be known yet when the node is built.
PROJECT = cx.project_name(None)


class SlurpService(AdminRounds):
    def __init__(
        self,
        replica: Replica,
        election: ElectionRunner,
        board: BoardService,
        hmmm: HmmmService,
    ) -> None:
        self.replica = replica
        self.election = election
        self.board = board
        self.hmmm = hmmm
        super().__init__("slurp", log, replica.watch((*WATCHED, LEADER)), TICK_S)
        self._feed = replica.feed(WATCHED)
        self._board_news = board.listen()
        self._decisions: dict[bytes, cx.ContextEntry] = {}
        self._acts: dict[bytes, sl.ActEntry] = {}
        self._looked: tuple[object, ...] | None = None  # what the last look owed nothing at
        self.written = 0  # act entries written, for status and tests

    async def refresh(self) -> None:
        """Take what arrived: decisions and acts (repeats ignored)."""
        for entry in await self._feed.fresh():
            self._take(entry)

    def _take(self, entry: Entry) -> None:
        if entry.kind == cx.DECISION:
            self._decisions[entry.hash] = cx.ContextEntry(
                entry.author, entry.seq, entry.ts, entry.kind, entry.hash, entry.body
            )
        elif entry.kind in sl.KINDS:
            self._acts[entry.hash] = sl.ActEntry(
                entry.author, entry.seq, entry.lamport, entry.kind, entry.hash, entry.body
            )

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
            await self.act_owed()

    async def owed(self) -> list[sl.Due]:
        """The acts owed now, as this node's logs, board and threads say."""
        proof = await self.election.leadership()
        leaders = {term: p.leader for term, p in proof.proven.items()}
        membership = self.replica.membership
        roles_of = {key: m.role for key, m in membership.removed.items()}
        roles_of.update({key: m.role for key, m in membership.members.items()})
        roles = self.replica.roles
        deciding = frozenset(r.name for r in roles.by_name.values() if can_make_decisions(r))
        context = cx.fold_context(self._decisions.values(), roles_of, PROJECT, deciding)
        curation = sl.fold_acts(self._acts.values(), leaders, proof.ends(), context)
        return sl.due(context, curation, self.board.board.tasks, self.hmmm.threads)

    async def act_owed(self) -> int:
        """Append the acts owed, as the admin of a proven leased term; how many act
        entries were written."""
        looking = (
            len(self._decisions),
            len(self._acts),
            len(self.board.board.tasks),
            len(self.hmmm.threads),
            id(self.replica.membership),
            self.election.election.term,
        )
        board_changed = self._board_news.is_set()
        self._board_news.clear()
        if looking == self._looked and not board_changed:
            return 0
        term = await self._term_led()
        if term is None:
            return 0
        owed = await self.owed()
        written = 0
        for start in range(0, len(owed), ENTRIES_PER_BATCH):
            if await self._term_led() != term:
                log.warning("lost the lease while curating context; stopping")
                break
            batch = [(due.kind, due.body(term)) for due in owed[start : start + ENTRIES_PER_BATCH]]
            for entry in await self.replica.append_many(batch):
                self._take(entry)
            written += len(batch)
        self.written += written
        if written:
            log.info("curated context: %d acts in term %d", written, term)
        if written == len(owed):
            self._looked = (
                len(self._decisions),
                len(self._acts),
                len(self.board.board.tasks),
                len(self.hmmm.threads),
                id(self.replica.membership),
                term,
            )
        return written
