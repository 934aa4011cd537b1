"""HMMM's rules (`bzzz.domain.hmmm`): the fold enforces every limit, the thread's state
follows a simulated clock, and seeded random discussions always end."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from bzzz.domain import hmmm as hm
from bzzz.domain.claims import ClaimEntry
from bzzz.domain.hmmm_review import review
from bzzz.domain.payload import encode_payload

HOLDER, ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (bytes([n]) * 32 for n in range(1, 8))
TASK = "local:fix-login"
TOKEN = (1, 1)
LIMITS = hm.Limits(window_ms=30_000)


def holds(task: str, author: bytes, token: tuple[int, int]) -> bool:
    return task == TASK and author == HOLDER and token == TOKEN


class Talk:
    """Entries in causal order with a clock of their own."""

    def __init__(self) -> None:
        self.entries: list[ClaimEntry] = []
        self.now = 1_000_000

    def add(self, author: bytes, kind: str, after_ms: int = 1000, **data: Any) -> bytes:
        self.now += after_ms
        n = len(self.entries) + 1
        digest = hashlib.sha256(f"{n}".encode()).digest()
        body = encode_payload({"thread": TASK, **data})
        self.entries.append(ClaimEntry(author, kind, body, digest, self.now, n))
        return digest

    def plan(self, files: list[str], replaces: bytes | None = None, **more: Any) -> bytes:
        fields: dict[str, Any] = {"task": TASK, "term": 1, "grant": 1, "text": "do it"}
        if replaces is not None:
            fields["replaces"] = replaces
        return self.add(HOLDER, hm.PLAN, files=files, **fields, **more)

    def say(self, who: bytes, parent: bytes | None, **more: Any) -> bytes:
        fields: dict[str, Any] = {"query_type": "clarification_needed", "text": "why?"}
        fields.update(more)
        return self.add(who, hm.MSG, parent=parent, **fields)

    def threads(self, limits: hm.Limits = LIMITS) -> hm.Threads:
        return hm.fold_threads(self.entries, limits, holds)

    def view(self, at: int | None = None, limits: hm.Limits = LIMITS) -> hm.ThreadView:
        thread = self.threads(limits).threads[TASK]
        return hm.view(thread, self.now if at is None else at, limits)


def test_a_plan_waits_out_its_window_then_the_holder_proceeds() -> None:
    talk = Talk()
    plan = talk.plan(["app/login.py"])
    talk.add(ALICE, hm.APPROVAL, parent=plan)
    talk.add(BOB, hm.OBJECTION, parent=plan, severity="minor", reason="naming", resolve="-")
    v = talk.view()
    assert v.state is hm.ThreadState.WINDOW and v.until == talk.entries[0].ts + 30_000
    assert hm.next_step(v, LIMITS)[0] is hm.Next.WAIT
    later = talk.view(at=talk.entries[0].ts + 30_000)
    assert later.state is hm.ThreadState.READY and "1 approvals" in later.why
    assert hm.next_step(later, LIMITS)[0] is hm.Next.PROCEED
    talk.add(HOLDER, hm.RESOLUTION, after_ms=30_000, outcome="proceed", why="no objection")
    assert talk.view().state is hm.ThreadState.RESOLVED


def test_a_major_objection_asks_for_revisions_then_release() -> None:
    limits = hm.Limits(max_revisions=1)
    talk = Talk()
    first = talk.plan(["a.py"])
    talk.add(ALICE, hm.OBJECTION, parent=first, severity="major", reason="a.py is shared")
    v = talk.view(limits=limits)
    assert v.state is hm.ThreadState.OBJECTED
    assert hm.next_step(v, limits) == (hm.Next.REVISE, "a major objection; revision 1 of 1")
    second = talk.plan(["b.py"], replaces=first)
    assert talk.view(limits=limits).state is hm.ThreadState.WINDOW  # a new window
    talk.add(ALICE, hm.OBJECTION, parent=second, severity="major", reason="b.py too")
    assert hm.next_step(talk.view(limits=limits), limits)[0] is hm.Next.RELEASE


def test_a_blocking_objection_escalates_once_and_a_person_decides() -> None:
    talk = Talk()
    plan = talk.plan(["db/schema.sql"])
    talk.add(ALICE, hm.OBJECTION, parent=plan, severity="blocking", reason="data loss")
    v = talk.view()
    assert v.state is hm.ThreadState.ESCALATED
    assert hm.next_step(v, LIMITS)[0] is hm.Next.ESCALATE
    talk.add(HOLDER, hm.ESCALATION, reason="a blocking objection", to="architect")
    assert hm.next_step(talk.view(), LIMITS)[0] is hm.Next.NOTHING  # written once
    talk.add(CAROL, hm.RESOLUTION, outcome="decided", why="go ahead with a backup")  # admin
    assert hm.fold_threads(talk.entries, LIMITS, holds, admins=[CAROL]).threads[TASK]
    decided = hm.view(
        hm.fold_threads(talk.entries, LIMITS, holds, admins=[CAROL]).threads[TASK], talk.now, LIMITS
    )
    assert decided.state is hm.ThreadState.RESOLVED and "backup" in decided.why
    # without admin rights, an outsider cannot end it
    assert talk.view().state is hm.ThreadState.ESCALATED


@pytest.mark.parametrize(
    ("build", "rule"),
    [
        (lambda t: t.say(ALICE, None, hop_count=0, query_type="riddle"), "query_type"),
        (lambda t: t.say(ALICE, b"\x01" * 32), "parent is not a message"),
        (lambda t: t.say(ALICE, t.plan(["a"]), hop_count=7), "hop_count 7"),
        (lambda t: t.add(ALICE, hm.PLAN, task=TASK, term=1, grant=1), "from the task's holder"),
        (lambda t: t.add(HOLDER, hm.PLAN, task=TASK, term=1, grant=9), "from the task's holder"),
        (lambda t: t.add(ALICE, hm.APPROVAL, parent=None), "answers a plan"),
        (lambda t: t.add(HOLDER, hm.APPROVAL, parent=t.plan(["a"])), "its own plan"),
        (lambda t: t.add(ALICE, hm.OBJECTION, parent=t.plan([]), severity="huge"), "severity"),
        (lambda t: t.add(ALICE, hm.MSG, thread="not a thread", query_type="answer"), "a thread"),
        (lambda t: t.add(ALICE, hm.MSG, query_type="answer", text="x" * 9000), "text"),
        (lambda t: t.add(ALICE, hm.RESOLUTION, outcome="proceed"), "participant or the admin"),
    ],
)
def test_hostile_messages_are_left_out_and_reported(build: Any, rule: str) -> None:
    talk = Talk()
    build(talk)
    threads = talk.threads()
    assert any(rule in line for line in threads.ignored), threads.ignored
    thread = threads.threads.get(TASK)
    assert thread is None or all(m.author != ALICE for m in thread.messages)


def test_hops_participants_rate_and_cycles_are_enforced_by_the_fold() -> None:
    talk = Talk()
    root = talk.say(ALICE, None)
    one = talk.say(BOB, root, query_type="answer")
    two = talk.say(ALICE, one, query_type="answer")
    three = talk.say(BOB, two, query_type="answer")
    talk.say(ALICE, three, query_type="answer")  # hop 4 > 3
    talk.say(CAROL, root, query_type="help_request", parameters={"to": ALICE.hex()})  # cycle
    for who in (CAROL, DAVE, ERIN, FRANK):  # the cycle was left out: FRANK is the 6th
        talk.say(who, root, query_type="suggestion")
    threads = talk.threads()
    thread = threads.threads[TASK]
    reasons = [r for _, _, r in thread.ignored]
    assert "more than 3 hops" in reasons
    assert "re-entry: it asks an agent that is already up its chain" in reasons
    assert "the thread has its 5 participants" in reasons
    assert [m.hop for m in thread.messages[:4]] == [0, 1, 2, 3]
    flood = Talk()
    first = flood.say(ALICE, None)
    for _ in range(8):
        flood.say(ALICE, first, after_ms=100, query_type="concern")
    assert sum("in a minute" in line for line in flood.threads().ignored) == 3  # 6 per minute


def test_the_message_limit_and_the_ttl_end_a_discussion_by_escalation() -> None:
    talk = Talk()
    root = talk.say(ALICE, None)
    for n in range(12):
        talk.say(BOB if n % 2 else CAROL, root, after_ms=20_000, query_type="concern")
    v = talk.view()
    assert v.state is hm.ThreadState.ESCALATED and "10 messages" in v.why
    assert len(v.thread.messages) == 10
    assert hm.next_step(v, LIMITS)[0] is hm.Next.ESCALATE
    quiet = Talk()
    quiet.say(ALICE, None)
    assert quiet.view().state is hm.ThreadState.DISCUSSING
    late = quiet.view(at=quiet.now + LIMITS.ttl_ms)
    assert late.state is hm.ThreadState.ESCALATED and "time to live" in late.why


def test_the_rule_reviewer_objects_to_overlaps_and_unfinished_dependencies() -> None:
    talk = Talk()
    mine = talk.plan(["app/login.py", "app/session.py"])
    plan = talk.threads().threads[TASK].plans[0]
    assert plan.hash == mine
    other = hm.Plan(plan.message, "local:other", (1, 2), ("app/session.py", "README"), None)
    findings = review(plan, [other, plan], ["local:db"])
    assert [(f.rule, f.severity) for f in findings] == [
        ("files-overlap", "major"),
        ("dependency-not-done", "major"),
    ]
    assert "local:other: app/session.py" in findings[0].reason
    assert review(plan, [], []) == []


@pytest.mark.parametrize("seed", range(40))
def test_every_seeded_discussion_ends_within_its_ttl(seed: int) -> None:
    """Whatever the messages (any author, any kind, forged parents and hops, floods), the
    thread is resolved or escalated once its time to live has passed, and the holder's
    next step never asks it to wait past then."""
    rng = random.Random(seed)
    limits = hm.Limits(window_ms=rng.choice([0, 5_000, 30_000]), max_revisions=rng.randint(0, 2))
    talk = Talk()
    authors = [HOLDER, ALICE, BOB, CAROL, DAVE, ERIN, FRANK]
    hashes: list[bytes] = []
    plans: list[bytes] = []
    for _ in range(rng.randint(1, 60)):
        who = rng.choice(authors)
        step = rng.randint(0, 120_000)
        parent = rng.choice([*hashes, None, b"\x09" * 32]) if hashes else None
        pick = rng.random()
        if pick < 0.2 and who == HOLDER:
            h = talk.add(
                HOLDER,
                hm.PLAN,
                step,
                task=TASK,
                term=1,
                grant=1,
                text="p",
                files=["f"],
                **({"replaces": plans[-1]} if plans else {}),
            )
            plans.append(h)
        elif pick < 0.45 and plans:
            h = talk.add(
                who,
                hm.OBJECTION,
                step,
                parent=rng.choice(plans),
                severity=rng.choice(hm.SEVERITIES),
                reason="r",
            )
        elif pick < 0.55 and plans:
            h = talk.add(who, hm.APPROVAL, step, parent=rng.choice(plans))
        elif pick < 0.6:
            h = talk.add(who, hm.RESOLUTION, step, outcome=rng.choice(hm.OUTCOMES), why="w")
        else:
            h = talk.add(
                who,
                hm.MSG,
                step,
                parent=parent,
                hop_count=rng.randint(0, 5),
                query_type=rng.choice(hm.QUERY_TYPES),
                text="t",
            )
        hashes.append(h)
    threads = talk.threads(limits)
    thread = threads.threads.get(TASK)
    if thread is None:
        return  # nothing was accepted: there is no discussion to end
    end = thread.first_ts + limits.ttl_ms
    v = hm.view(thread, max(end, talk.now), limits)
    assert v.state in (hm.ThreadState.RESOLVED, hm.ThreadState.ESCALATED), v
    step, _ = hm.next_step(v, limits)
    assert step in (hm.Next.NOTHING, hm.Next.ESCALATE)
    # before then, a wait always names when it ends, no later than the TTL
    early = hm.view(thread, thread.first_ts, limits)
    if early.until is not None:
        assert early.until <= end


async def test_the_projection_refolds_one_thread_at_a_time_and_agrees_with_a_full_fold() -> None:
    from bzzz.domain import board as bd
    from bzzz.domain.entry import Entry
    from bzzz.projections.threads import ThreadsProjection

    talk = Talk()
    root = talk.say(ALICE, None)
    talk.say(BOB, root, query_type="answer")
    waiting: list[ClaimEntry] = list(talk.entries)

    def as_entry(e: ClaimEntry) -> Entry:
        return Entry(e.author, 1, None, e.lamport, e.ts, e.kind, e.body, b"", b"", e.hash)

    async def fresh() -> list[Entry]:
        taken = [as_entry(e) for e in waiting]
        waiting.clear()
        return taken

    projection = ThreadsProjection(fresh, LIMITS)
    board = bd.Board()
    await projection.update(board, [])
    assert len(projection.threads.threads[TASK].messages) == 2
    # a plan arrives before the board knows the holder: left out, then taken when the
    # board's holds change, without any new HMMM entry
    talk.plan(["a.py"])
    waiting.append(talk.entries[-1])
    await projection.update(board, [])
    assert projection.threads.threads[TASK].plan is None
    board.tasks[TASK] = bd.BoardTask(
        hm_spec(), "local", "local:/x", 0, hold=bd.Hold(HOLDER, b"\x07" * 32, [TOKEN])
    )
    await projection.update(board, [])
    assert projection.threads.threads[TASK].plan is not None
    full = hm.fold_threads(talk.entries, LIMITS, holds)
    assert [m.hash for m in full.threads[TASK].messages] == [
        m.hash for m in projection.threads.threads[TASK].messages
    ]


def hm_spec() -> Any:
    from bzzz.domain.tasks import TaskSpec

    return TaskSpec(id=TASK, title="Fix login")
