"""The task board's fold (`bzzz.domain.board`) and the admin's sync plan
(`bzzz.domain.intake`): pure, no store, no network."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import board as bd
from bzzz.domain import claims as cl
from bzzz.domain import task_entries as te
from bzzz.domain.intake import ScopeChanges, SourcePoll, plan_sync
from bzzz.domain.payload import encode_payload
from bzzz.domain.tasks import TaskSpec, TaskState

ADMIN, OTHER_ADMIN, ALICE, BOB = (bytes([n]) * 32 for n in (1, 2, 3, 4))
LEADERS = {1: ADMIN, 2: OTHER_ADMIN}
SCOPE = "local:/srv/tasks"


class Log:
    """Entries in causal order, as the fold sees them."""

    def __init__(self) -> None:
        self.entries: list[bd.BoardEntry] = []

    def add(self, author: bytes, kind: str, **data: Any) -> bd.BoardEntry:
        n = len(self.entries) + 1
        entry = bd.BoardEntry(
            author,
            kind,
            encode_payload(data),
            hashlib.sha256(f"{n}".encode()).digest(),
            1000 + n,
            n,
        )
        self.entries.append(entry)
        return entry

    def opened(self, spec: TaskSpec, term: int = 1, author: bytes = ADMIN) -> None:
        self.add(author, te.OPENED, **te.task_body(term, "local", SCOPE, spec))

    def grant(self, task: str, claimant: bytes, token: cl.Token) -> bd.BoardEntry:
        leader = LEADERS[token[0]]
        grant = cl.Grant(leader, task, claimant, token, 60_000, None, 0)
        return self.add(leader, cl.GRANTED, **cl.grant_bodies([grant])[0])

    def report(self, who: bytes, kind: str, task: str, token: cl.Token, **more: Any) -> None:
        self.add(who, kind, **te.outcome_body(task, token, **more))

    def board(self) -> bd.Board:
        return bd.fold_board(self.entries, LEADERS)


def spec(slug: str, **fields: Any) -> TaskSpec:
    return TaskSpec(**{"id": f"local:{slug}", "title": slug.title(), **fields})


def always(claimant: bytes | None) -> Any:
    """A claim book whose live grant of every task is to `claimant` (None: no grant)."""
    return lambda task: cl.Grant(ADMIN, task, claimant, (1, 1), 1, None, 0) if claimant else None


def test_a_task_goes_from_open_through_its_phases_to_done() -> None:
    log = Log()
    log.opened(spec("a"))
    grant = log.grant("local:a", ALICE, (1, 1))
    for phase in ("planning", "working", "review"):
        log.report(ALICE, cl.PROGRESS, "local:a", (1, 1), phase=phase)
    log.report(ALICE, te.COMPLETED, "local:a", (1, 1), result="fixed", link="http://pr/1")
    log.report(ALICE, cl.RELEASED, "local:a", (1, 1))  # written with the completion
    board = log.board()
    task = board.tasks["local:a"]
    assert task.state is TaskState.DONE and task.result == "fixed"
    assert task.hold is not None and task.hold.claim == grant.hash
    assert [e.what for e in task.history] == [
        f"opened from {SCOPE}",
        f"granted to {ALICE.hex()[:12]}",
        "planning",
        "working",
        "review",
        "completed",
    ]
    assert board.ignored == []
    view = board.view("local:a", 0, always(None))
    assert view.state is TaskState.DONE and view.holder is None


def test_entries_of_anyone_but_the_terms_leader_and_impossible_steps_are_ignored() -> None:
    log = Log()
    log.opened(spec("a"))
    log.opened(spec("forged"), term=1, author=BOB)  # BOB did not lead term 1
    log.opened(spec("late"), term=3)  # nobody proved term 3
    log.grant("local:a", ALICE, (1, 1))
    log.report(ALICE, cl.PROGRESS, "local:a", (1, 1), phase="working")  # no plan yet
    log.report(BOB, te.COMPLETED, "local:a", (1, 1))  # not the holder
    log.report(ALICE, te.COMPLETED, "local:a", (1, 7))  # not its token
    log.report(ALICE, cl.PROGRESS, "local:a", (1, 1), phase="dancing")
    log.add(ALICE, te.COMPLETED, task=["not", "text"])
    log.add(ADMIN, te.OPENED, term=1, source="x", scope="y", spec={"id": "local:b"})
    log.add(ALICE, te.FAILED)  # a body without anything
    board = log.board()
    assert set(board.tasks) == {"local:a"}
    assert board.tasks["local:a"].state is TaskState.CLAIMED
    assert len(board.ignored) == 9, board.ignored
    assert any("cannot be working" in line for line in board.ignored)


def test_a_new_leaders_reissue_continues_the_hold_and_any_of_its_tokens_counts() -> None:
    log = Log()
    log.opened(spec("a"))
    first = log.grant("local:a", ALICE, (1, 1))
    log.grant("local:a", ALICE, (2, 1))  # term 2's leader carries the grant forward
    log.report(ALICE, cl.PROGRESS, "local:a", (1, 1), phase="planning")  # the old token
    log.report(ALICE, te.FAILED, "local:a", (2, 1), reason="tests never pass")
    board = log.board()
    task = board.tasks["local:a"]
    assert task.state is TaskState.FAILED and task.reason == "tests never pass"
    assert task.hold is None and task.ended[-1].claim == first.hash
    assert task.ended[-1].tokens == [(1, 1), (2, 1)]
    # failed is claimable again, by someone else: a new hold
    second = log.grant("local:a", BOB, (2, 2))
    board = log.board()
    assert board.tasks["local:a"].hold.claim == second.hash  # type: ignore[union-attr]


def test_a_lapsed_lease_shows_released_and_a_grant_to_another_begins_a_new_hold() -> None:
    log = Log()
    log.opened(spec("a"))
    log.grant("local:a", ALICE, (1, 1))
    board = log.board()
    assert board.view("local:a", 0, always(ALICE)).holder == ALICE
    lapsed = board.view("local:a", 0, always(None))
    assert lapsed.state is TaskState.RELEASED and lapsed.claimable and lapsed.holder is None
    log.grant("local:a", BOB, (1, 2))  # the admin granted it again after the lapse
    board = log.board()
    task = board.tasks["local:a"]
    assert task.hold is not None and task.hold.holder == BOB and task.ended[0].holder == ALICE
    log.report(ALICE, te.COMPLETED, "local:a", (1, 1))  # ALICE's hold is over
    assert log.board().tasks["local:a"].state is TaskState.CLAIMED


def test_dependencies_block_until_done_or_closed_and_unknown_ones_do_not() -> None:
    log = Log()
    log.opened(spec("base"))
    log.opened(spec("top", depends_on=("local:base", "local:elsewhere")))
    board = log.board()
    top = board.view("local:top", 0, always(None))
    assert top.state is TaskState.BLOCKED and not top.claimable
    assert top.waiting_for == ("local:base",) and top.unknown == ("local:elsewhere",)
    log.add(ADMIN, te.CLOSED, **te.closed_body(1, "local", SCOPE, "local:base"))
    assert log.board().view("local:top", 0, always(None)).state is TaskState.OPEN


def test_closing_ends_a_hold_and_reopening_makes_the_task_open_again() -> None:
    log = Log()
    log.opened(spec("a"))
    log.grant("local:a", ALICE, (1, 1))
    log.add(ADMIN, te.CLOSED, **te.closed_body(1, "local", SCOPE, "local:a"))
    board = log.board()
    assert board.tasks["local:a"].state is TaskState.CLOSED
    assert board.tasks["local:a"].hold is None
    log.report(ALICE, cl.RELEASED, "local:a", (1, 1))  # the holder lets go: silently
    log.opened(spec("a", title="A again"), term=2, author=OTHER_ADMIN)
    board = log.board()
    assert board.tasks["local:a"].state is TaskState.OPEN
    assert board.tasks["local:a"].spec.title == "A again" and board.ignored == []


def test_the_fold_does_not_depend_on_the_order_logs_arrive_in() -> None:
    log = Log()
    for n in range(5):
        log.opened(spec(f"t{n}"))
    log.grant("local:t1", ALICE, (1, 1))
    log.report(ALICE, cl.PROGRESS, "local:t1", (1, 1), phase="planning")
    log.grant("local:t2", BOB, (1, 2))
    log.report(BOB, te.COMPLETED, "local:t2", (1, 2))
    log.add(ADMIN, te.CLOSED, **te.closed_body(1, "local", SCOPE, "local:t3"))
    want = _summary(log.board())
    shuffled = list(log.entries)
    random.Random(7).shuffle(shuffled)
    assert _summary(bd.fold_board(shuffled, LEADERS)) == want
    # applied in order, in chunks, as a projection does
    board = bd.Board()
    for start in range(0, len(log.entries), 3):
        bd.apply_board(board, log.entries[start : start + 3], LEADERS)
    assert _summary(board) == want


def _summary(board: bd.Board) -> dict[str, tuple[str, bytes | None]]:
    return {
        t: (task.state.value, task.hold.holder if task.hold else None)
        for t, task in board.tasks.items()
    }


PHASE_KINDS = st.sampled_from(["planning", "working", "review", None])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["grant", "progress", "done", "fail", "release", "close", "open"]),
            st.sampled_from([ALICE, BOB]),
            st.integers(1, 3),
            PHASE_KINDS,
        ),
        max_size=30,
    )
)
def test_any_sequence_of_entries_folds_without_crashing(steps: list[Any]) -> None:
    log = Log()
    log.opened(spec("a"))
    for what, who, number, phase in steps:
        token = (1, number)
        if what == "grant":
            log.grant("local:a", who, token)
        elif what == "progress":
            log.report(who, cl.PROGRESS, "local:a", token, **({"phase": phase} if phase else {}))
        elif what == "done":
            log.report(who, te.COMPLETED, "local:a", token)
        elif what == "fail":
            log.report(who, te.FAILED, "local:a", token)
        elif what == "release":
            log.report(who, cl.RELEASED, "local:a", token)
        elif what == "close":
            log.add(ADMIN, te.CLOSED, **te.closed_body(1, "local", SCOPE, "local:a"))
        else:
            log.opened(spec("a"))
    board = log.board()
    task = board.tasks["local:a"]
    assert isinstance(task.state, TaskState)
    held = task.state in bd.HELD
    assert held == (task.hold is not None) or task.state is TaskState.DONE
    assert board.view("local:a", 0, always(None)).state in set(TaskState)


# The admin's sync plan


def poll(*changes: ScopeChanges, cursor: dict[str, Any] | None = None) -> SourcePoll:
    return SourcePoll(changes=changes, cursor=cursor)


def apply(board: bd.Board, entries: list[tuple[str, dict[str, Any]]]) -> bd.Board:
    log = Log()
    log.entries = [
        bd.BoardEntry(ADMIN, kind, encode_payload(body), bytes([n]) * 32, n, 10_000 + n)
        for n, (kind, body) in enumerate(entries, 1)
    ]
    bd.apply_board(board, log.entries, LEADERS)
    return board


def test_a_sync_opens_updates_and_closes_only_what_changed() -> None:
    board = bd.Board()
    first = plan_sync(board, "local", poll(ScopeChanges(SCOPE, (spec("a"), spec("b")))), 1)
    assert [k for k, _ in first.entries] == [te.OPENED, te.OPENED]
    assert first.synced is not None  # the first sync of a source is always noted
    apply(board, [*first.entries, (te.SYNCED, first.synced)])
    same = plan_sync(board, "local", poll(ScopeChanges(SCOPE, (spec("a"), spec("b")))), 1)
    assert same.entries == [] and same.synced is None  # unchanged: no entry at all
    changed = ScopeChanges(SCOPE, (spec("a", priority=0),))
    plan = plan_sync(board, "local", poll(changed), 1)
    assert [(k, b.get("spec", {}).get("id", b.get("task"))) for k, b in plan.entries] == [
        (te.UPDATED, "local:a"),
        (te.CLOSED, "local:b"),
    ]


def test_a_delta_closes_what_it_names_and_unreadable_tasks_are_kept() -> None:
    board = apply(
        bd.Board(),
        plan_sync(
            bd.Board(), "local", poll(ScopeChanges(SCOPE, (spec("a"), spec("b"), spec("c")))), 1
        ).entries,
    )
    delta = ScopeChanges(SCOPE, (), closed=("local:a",), complete=False)
    assert [b["task"] for _, b in plan_sync(board, "local", poll(delta), 1).entries] == ["local:a"]
    kept = ScopeChanges(SCOPE, (spec("a"),), keep=("local:b",))
    plan = plan_sync(board, "local", poll(kept), 1)
    assert [b["task"] for _, b in plan.entries] == ["local:c"]


def test_a_task_of_another_scope_is_a_problem_not_a_takeover() -> None:
    board = apply(
        bd.Board(),
        plan_sync(bd.Board(), "local", poll(ScopeChanges(SCOPE, (spec("a"),))), 1).entries,
    )
    plan = plan_sync(board, "other", poll(ScopeChanges("local:/elsewhere", (spec("a"),))), 1)
    assert plan.entries == []
    assert plan.problems == (f"local:a comes from {SCOPE}, not local:/elsewhere",)
    assert plan.synced is not None and plan.synced["problems"] == list(plan.problems)


def test_a_request_to_sync_or_a_new_cursor_is_noted_even_without_changes() -> None:
    board = bd.Board()
    first = plan_sync(board, "gh", poll(cursor={"etag": "1"}), 1)
    assert first.synced is not None
    apply(board, [(te.SYNCED, first.synced)])
    assert board.cursors["gh"].cursor == {"etag": "1"}
    assert plan_sync(board, "gh", poll(cursor={"etag": "1"}), 1).synced is None
    assert plan_sync(board, "gh", poll(cursor={"etag": "2"}), 1).synced is not None
    board.sync_requested = board.cursors["gh"].lamport + 1
    asked = plan_sync(board, "gh", poll(), 1)
    assert asked.synced is not None and asked.synced["cursor"] == {"etag": "1"}  # kept


def test_a_huge_hostile_spec_is_cut_to_fit_one_entry() -> None:
    huge = TaskSpec(
        id="github:octo/app#1",
        title="t" * 10_000,
        body="€" * 100_000,  # three bytes each in UTF-8
        labels=tuple("l" * 500 + str(n) for n in range(500)),
        depends_on=tuple(f"github:octo/app#{n}" for n in range(2, 200)),
        url="u" * 100_000,
    )
    plan = plan_sync(bd.Board(), "gh", poll(ScopeChanges("github:octo/app", (huge,))), 1)
    ((kind, body),) = plan.entries
    encoded = encode_payload(body)  # raises if it would not fit an entry
    assert kind == te.OPENED and len(encoded) < 64 * 1024
    spec = te.parse_spec(body["spec"])
    assert isinstance(spec, TaskSpec) and spec.body.startswith("€") and len(spec.labels) == 50


def test_a_deposed_admin_cannot_write_the_board_in_its_old_terms_name() -> None:
    log = Log()
    log.opened(spec("a"))
    log.opened(spec("b"), term=2, author=OTHER_ADMIN)  # term 2 began, proven at lamport 2
    log.add(ADMIN, te.CLOSED, **te.closed_body(1, "local", SCOPE, "local:a"))  # after it
    log.opened(spec("pwn", priority=0))
    board = bd.fold_board(log.entries, LEADERS, {1: 2})
    assert set(board.tasks) == {"local:a", "local:b"}
    assert board.tasks["local:a"].state is TaskState.OPEN
    assert sum("after a newer term than 1" in line for line in board.ignored) == 2


def test_the_newest_token_wins_whatever_order_the_grants_arrive_in() -> None:
    log = Log()
    log.opened(spec("a"))
    log.grant("local:a", BOB, (2, 1))  # the new leader's grant, with a lower Lamport clock
    log.grant("local:a", ALICE, (1, 5))  # an old term's grant made concurrently
    log.report(BOB, te.COMPLETED, "local:a", (2, 1))
    board = log.board()
    task = board.tasks["local:a"]
    assert task.state is TaskState.DONE and task.hold is not None and task.hold.holder == BOB


def test_a_lone_surrogate_from_a_source_is_cleaned_not_a_stalled_intake() -> None:
    bad = TaskSpec(id="local:s", title="caf\udce9", body="x\ud800y", labels=("l\udfff",))
    plan = plan_sync(bd.Board(), "local", poll(ScopeChanges(SCOPE, (bad,))), 1)
    ((_, body),) = plan.entries
    encode_payload(body)  # every node can encode it
    assert body["spec"]["title"] == "caf?" and body["spec"]["body"] == "x?y"


def test_the_mirror_shows_released_only_once_a_hold_has_ended_or_lapsed() -> None:
    from bzzz.services.intake import _mirror_steps

    log = Log()
    log.opened(spec("a"))
    grant = log.grant("local:a", ALICE, (1, 1))
    board = log.board()
    task = board.tasks["local:a"]
    held = board.view("local:a", 0, always(ALICE))
    assert [s for _, s in _mirror_steps(task, held)] == ["claimed"]
    task.mirrored.add((grant.hash, "claimed"))
    gap = board.view("local:a", 0, always(None))  # a failover: not live for a moment
    assert _mirror_steps(task, gap, lapsed=False) == []
    assert [s for _, s in _mirror_steps(task, gap, lapsed=True)] == ["released"]
    log.report(ALICE, te.COMPLETED, "local:a", (1, 1))
    board = log.board()
    board.tasks["local:a"].mirrored.add((grant.hash, "claimed"))
    done = board.view("local:a", 0, always(None))
    assert [s for _, s in _mirror_steps(board.tasks["local:a"], done)] == ["completed"]
