"""The execution service (issue 20): the holder of a granted task has a model plan it,
and once HMMM lets the plan proceed, works it: a worktree of the task's repository, the
model driving the six tools, each `run` in the sandbox, every step an entry before it
runs (``exec.step``, fail closed) and its outcome after (``exec.result``), then a signed
commit, a token check, the push, a pull request where a forge handles the repository,
and ``task.completed`` (which also releases the claim).

Planning: a task we hold in ``claimed`` whose thread has no plan of our hold gets one
from the model (a text turn without tools), posted through `HmmmService.plan`; a plan
objected to is revised the same way, with the objections in the prompt, while HMMM's
revision limit allows. Whether to proceed, revise, release or escalate stays HMMM's
rule (`hmmm.next_step`); this service starts work when the board shows the task
``working`` (HMMM's resolution wrote that phase).

Ends: a cap reached (calls, tokens, wall time, cost), a model that keeps failing, or a
workspace or sandbox that cannot work escalate through HMMM and fail the task; a grant
lost mid-work stops the loop and pushes nothing; a token superseded before the push
refuses the push. A crash leaves the grant to lapse; the next holder starts fresh on
its own branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain import task_entries as te
from bzzz.domain import tools as tl
from bzzz.domain import work as wk
from bzzz.domain.board import TaskView
from bzzz.domain.execution import ChatMessage, Remote, Reply, RunLimits, ToolCall, Worktree
from bzzz.domain.tasks import TaskSpec, TaskState, issue_number
from bzzz.errors import (
    BzzzError,
    ReasoningError,
    SandboxError,
    SourceError,
    UsageError,
    WorkspaceError,
)
from bzzz.services.background import Background
from bzzz.services.board import BoardService
from bzzz.services.hmmm import HmmmService
from bzzz.services.ports import PullRequests, Reasoner, Replica, Sandbox, Workspace

log = logging.getLogger("bzzz.execution")
TICK_S = 1.0
PLAN_RETRY_S = 30.0
PLAN_ATTEMPTS = 3
ASK_POLL_S = 0.5
# The whole environment of a sandboxed command: nothing of the node's (no token, no key).
# No bytecode files either: they would land in the commit of a repository that does
# not ignore them.
SANDBOX_ENV = {"HOME": "/tmp", "LANG": "C.UTF-8", "TERM": "dumb", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The server and models a task is worked with: `model` first, then `fallbacks`."""

    reasoner: Reasoner
    model: str
    fallbacks: tuple[str, ...] = ()
    compact: bool = False  # the short prompts, for a small model (`work.work_messages`)


@dataclass(frozen=True, slots=True)
class CommitIdentity:
    """Who commits: the agent's name, an address its signature is checked under, and
    its Ed25519 key in OpenSSH form (kept in memory; never in an entry or a log)."""

    name: str
    email: str
    signing_key_pem: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    role: str
    caps: wk.Caps = field(default_factory=wk.Caps)
    prices: wk.Prices | None = None
    run_limits: RunLimits = field(default_factory=RunLimits)
    context_length: int | None = None  # tokens; None: as the server says
    ask_timeout_s: float = 300.0
    max_jobs: int = 1
    template: str | None = None  # the role's prompt template


@dataclass
class _Run:
    """One task's work in progress."""

    task: str
    hold: bytes
    spec: TaskSpec
    choice: ModelChoice
    started: float = field(default_factory=time.monotonic)
    spent: wk.Spent = field(default_factory=wk.Spent)
    turns: list[Reply] = field(default_factory=list)
    steps: int = 0
    model: str = ""
    token: cl.Token = (0, 0)  # the latest token the run wrote an entry with

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.started


class _Stop(Exception):
    """The loop ends here: `outcome` and why."""

    def __init__(self, outcome: str, why: str) -> None:
        super().__init__(why)
        self.outcome = outcome
        self.why = why


class ExecutionService:
    def __init__(
        self,
        replica: Replica,
        board: BoardService,
        hmmm: HmmmService,
        choose: Callable[[TaskSpec], ModelChoice],
        sandbox: Sandbox,
        workspace: Workspace,
        pulls: Sequence[PullRequests],
        identity: CommitIdentity,
        settings: ExecutionSettings,
        keep_turns: Callable[[str, cl.Token, Sequence[Reply]], None] | None = None,
    ) -> None:
        self.replica = replica
        self.board = board
        self.hmmm = hmmm
        self.choose = choose
        self.sandbox = sandbox
        self.workspace = workspace
        self.pulls = list(pulls)
        self.identity = identity
        self.settings = settings
        self.keep_turns = keep_turns
        self._wake = board.listen()
        self._threads = replica.watch(hm.KINDS)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._worked: set[bytes] = set()  # holds whose work ran (never twice)
        self._planning: set[bytes] = set()  # holds planned, or plans revised, so far
        self._attempts: dict[bytes, int] = {}  # failed planning turns per hold
        self._retry_at: dict[bytes, float] = {}
        self._noted: set[str] = set()
        self._contexts: dict[tuple[int, str], int | None] = {}
        # Per hold: one model choice from the plan to the end (a replay goes on where
        # the plan left it), and what planning spent.
        self._choices: dict[bytes, ModelChoice] = {}
        self._spent: dict[bytes, wk.Spent] = {}
        self._turns: dict[bytes, list[Reply]] = {}  # the planning turns, for the record
        self._background = Background()
        self.finished: list[dict[str, Any]] = []  # what each run came to, for status

    async def start(self) -> None:
        self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()
        for job in list(self._jobs.values()):
            job.cancel()
        for job in list(self._jobs.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job

    def status(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox.name,
            "running": sorted(self._jobs),
            "finished": self.finished[-20:],
        }

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._pass()
            except BzzzError as error:
                log.error("execution: %s", error)
            except Exception:
                log.exception("execution: unexpected error; going on")
                await asyncio.sleep(TICK_S)

    async def _pass(self) -> None:
        for task, job in list(self._jobs.items()):
            if job.done():
                del self._jobs[task]
        now = now_ms()
        for grant in self.board.claims.book.live_grants(now, self.replica.me):
            if grant.task in self._jobs or len(self._jobs) >= self.settings.max_jobs:
                continue
            view = self.board.view(grant.task, now)
            if view is None or view.holder != self.replica.me or view.task.hold is None:
                continue
            if view.task.spec.repo is None:
                self._note(grant.task, f"{grant.task} names no repository: a person works it")
                continue
            job = self._job_for(view, view.task.hold.claim)
            if job is not None:
                self._jobs[grant.task] = asyncio.create_task(job, name=f"exec {grant.task}")

    def _job_for(self, view: TaskView, hold: bytes) -> Any:
        task = view.id
        if view.state is TaskState.WORKING:
            if hold in self._worked:
                return None
            self._worked.add(hold)
            return self._work(view.task.spec, hold)
        if view.state not in (TaskState.CLAIMED, TaskState.PLANNING):
            return None
        if time.monotonic() < self._retry_at.get(hold, 0.0):
            return None
        thread = self.hmmm.threads.get(task)
        plan = thread.plan if thread is not None else None
        ours = plan is not None and plan.message.author == self.replica.me
        assert view.task.hold is not None
        if plan is None or not ours or plan.token not in view.task.hold.tokens:
            if hold in self._planning:
                return None  # a plan of ours is on its way through the fold
            self._planning.add(hold)
            return self._plan(view.task.spec, hold, hold, None)
        assert thread is not None
        step, _ = hm.next_step(hm.view(thread, now_ms(), self.hmmm.limits), self.hmmm.limits)
        if step is hm.Next.REVISE and plan.hash not in self._planning:
            self._planning.add(plan.hash)
            return self._plan(view.task.spec, hold, plan.hash, thread)
        return None

    def _note(self, key: str, line: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            log.info("%s", line)

    # Planning

    async def _plan(
        self, spec: TaskSpec, hold: bytes, mark: bytes, thread: hm.Thread | None
    ) -> None:
        """Post a plan (a revision when `thread` has one objected to); `mark` is what
        `_planning` holds for it, dropped when the model failed, to try again later."""
        previous, objections = None, []
        if thread is not None and thread.plan is not None:
            previous = thread.plan.message.text
            objections = [
                f"({m.data.get('severity')}) {m.text} Resolve: {m.data.get('resolve') or '-'}"
                for m in thread.objections(thread.plan)
            ]
        try:
            choice = self._choice(spec, hold)
            messages = wk.plan_messages(
                spec,
                self.settings.template,
                self.settings.role,
                previous,
                objections,
                choice.compact,
            )
            reply, _ = await self._chat(choice, messages, tools=False)
            self._spent[hold] = self._spent.get(hold, wk.Spent()).add(reply, self.settings.prices)
            self._turns.setdefault(hold, []).append(reply)
            text, files = wk.parse_plan(reply.content)
            await self.hmmm.plan(spec.id, text, list(files))
            log.info("%s: planned with %s (%d files)", spec.id, reply.model, len(files))
        except ReasoningError as error:
            attempts = self._attempts[hold] = self._attempts.get(hold, 0) + 1
            if attempts >= PLAN_ATTEMPTS:
                await self._give_up(spec.id, f"the model could not plan: {error}")
                return
            self._planning.discard(mark)
            self._retry_at[hold] = time.monotonic() + PLAN_RETRY_S
            log.warning("%s: planning failed (%s); trying again later", spec.id, error)
        except UsageError as error:  # the grant went, or the fold refused the plan
            log.warning("%s: plan not posted: %s", spec.id, error)

    def _choice(self, spec: TaskSpec, hold: bytes) -> ModelChoice:
        if hold not in self._choices:
            self._choices[hold] = self.choose(spec)
        return self._choices[hold]

    async def _chat(
        self, choice: ModelChoice, messages: Sequence[ChatMessage], tools: bool
    ) -> tuple[Reply, str]:
        """One turn with the first model that answers; ReasoningError when none does."""
        errors = []
        for model in (choice.model, *choice.fallbacks):
            context = await self._context(choice, model)
            fitted = wk.fit_context(messages, context)
            try:
                reply = await choice.reasoner.chat(
                    model, fitted, tl.TOOLS if tools else (), max_tokens=wk.ANSWER_ROOM
                )
                return reply, model
            except ReasoningError as error:
                errors.append(f"{model}: {error}")
                log.warning("model %s failed: %s", model, error)
        raise ReasoningError("; ".join(errors)[:1000])

    async def _context(self, choice: ModelChoice, model: str) -> int | None:
        if self.settings.context_length is not None:
            return self.settings.context_length
        key = (id(choice.reasoner), model)
        if key not in self._contexts:
            try:
                found = {m.name: m.context_length for m in await choice.reasoner.models()}
            except ReasoningError:
                found = {}
            self._contexts[key] = found.get(model)
        return self._contexts[key]

    # Working

    def _token(self, task: str, hold: bytes) -> cl.Token:
        """The latest token of our hold; `_Stop` when the hold is gone."""
        view = self.board.view(task)
        grant = self.board.live(task)
        if (
            view is None
            or view.task.hold is None
            or view.task.hold.claim != hold
            or grant is None
            or grant.claimant != self.replica.me
        ):
            raise _Stop("lost", "our grant lapsed or was superseded; nothing is pushed")
        return grant.token

    async def _work(self, spec: TaskSpec, hold: bytes) -> None:
        try:
            choice = self._choice(spec, hold)
        except ReasoningError as error:
            await self._give_up(spec.id, f"no model: {error}")
            return
        run = _Run(spec.id, hold, spec, choice, spent=self._spent.pop(hold, wk.Spent()))
        run.turns = self._turns.pop(hold, [])
        run.model = run.choice.model
        tree: Worktree | None = None
        remote: Remote | None = None
        ended: dict[str, Any] = {}
        try:
            remote, forge = await self._remote(spec.repo or "")
            tree = await self.workspace.worktree(remote, spec.id, self.replica.me)
            token = run.token = self._token(spec.id, hold)
            await self.replica.append(
                tl.STARTED,
                te.outcome_body(
                    spec.id,
                    token,
                    backend=run.choice.reasoner.name,
                    model=run.model,
                    sandbox=self.sandbox.name,
                    branch=tree.branch,
                    base=tree.base,
                ),
            )
            log.info("%s: working on %s (%s)", spec.id, tree.branch, run.choice.reasoner.name)
            summary = await self._tool_loop(run, tree)
            ended = await self._deliver(run, tree, remote, forge, summary)
        except _Stop as stop:
            ended = {"outcome": stop.outcome, "why": stop.why}
        except (ReasoningError, SandboxError, WorkspaceError, SourceError) as error:
            ended = {"outcome": "failed", "why": str(error)}
        finally:
            if self.keep_turns is not None and run.turns:
                with contextlib.suppress(OSError, BzzzError):
                    self.keep_turns(spec.id, self._last_token(spec.id), run.turns)
        self._choices.pop(hold, None)
        await self._end(run, tree, ended)

    def _last_token(self, task: str) -> cl.Token:
        view = self.board.view(task)
        if view is not None and view.task.hold is not None:
            return view.task.hold.token
        return (0, 0)

    async def _remote(self, repo: str) -> tuple[Remote, PullRequests | None]:
        for forge in self.pulls:
            if forge.handles(repo):
                return await forge.remote(repo), forge
        return Remote(repo), None

    async def _tool_loop(self, run: _Run, tree: Worktree) -> str:
        thread = self.hmmm.threads.get(run.task)
        plan = thread.plan.message.text if thread is not None and thread.plan else ""
        discussion = self._discussion(thread)
        messages = wk.work_messages(
            run.spec,
            self.settings.template,
            self.settings.role,
            plan,
            discussion,
            run.choice.compact,
        )
        files = self.workspace.files(tree)
        while True:
            cap = wk.over_cap(self.settings.caps, run.spent, run.wall_s)
            if cap is not None:
                raise _Stop("capped", cap)
            reply, run.model = await self._chat(run.choice, messages, tools=True)
            run.spent = run.spent.add(reply, self.settings.prices)
            run.turns.append(reply)
            messages.append(ChatMessage("assistant", reply.content, reply.tool_calls))
            if not reply.tool_calls:
                messages.append(ChatMessage("user", wk.NO_TOOL_CALL))
                continue
            for call in reply.tool_calls:
                run.steps += 1
                token = run.token = self._token(run.task, run.hold)
                sandbox = self.sandbox.name if call.name == "run" else None
                # Fail closed: if the step cannot be recorded, it does not run.
                await self.replica.append(
                    tl.STEP, tl.step_body(run.task, token, run.steps, call, sandbox)
                )
                started = time.monotonic()
                ok, output, code, finished = await self._do(run, tree, files, call)
                await self.replica.append(
                    tl.RESULT,
                    tl.result_body(
                        run.task,
                        token,
                        run.steps,
                        ok,
                        output,
                        exit_code=code,
                        seconds=time.monotonic() - started,
                    ),
                )
                messages.append(
                    ChatMessage(
                        "tool",
                        tl.cut(output, tl.MAX_OUTPUT_TO_MODEL),
                        tool_call_id=call.id,
                        tool_name=call.name,
                    )
                )
                if finished:
                    return output

    async def _do(
        self, run: _Run, tree: Worktree, files: Any, call: ToolCall
    ) -> tuple[bool, str, int | None, bool]:
        """Run one call: (ok, what the model is told, exit code, finished)."""
        action = tl.check_call(call)
        if isinstance(action, tl.ToolError):
            return False, f"error: {action.message}", None, False
        args = action.arguments
        if action.tool == "read_file":
            answer = files.read(action.path)
        elif action.tool == "write_file":
            answer = files.write(action.path, args["content"])
            if answer.ok:
                return True, answer.text + wk.AFTER_WRITE, None, False
        elif action.tool == "list_files":
            answer = files.list(action.path)
        elif action.tool == "run":
            return await self._run(tree, args["command"])
        elif action.tool == "ask":
            return True, await self._ask(run, args["question"]), None, False
        else:  # finish
            return True, args["summary"], None, True
        return answer.ok, answer.text if answer.ok else f"error: {answer.text}", None, False

    async def _run(self, tree: Worktree, command: str) -> tuple[bool, str, int | None, bool]:
        result = await self.sandbox.run(command, tree.path, self.settings.run_limits, SANDBOX_ENV)
        parts = [
            f"exit status: {result.exit_code}"
            if result.exit_code is not None
            else f"stopped: {result.killed or 'killed'}"
        ]
        if result.truncated:
            parts.append("(output past the limit was dropped)")
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
        if out:
            parts.append("stdout:\n" + out)
        if err:
            parts.append("stderr:\n" + err)
        return result.exit_code == 0, "\n".join(parts), result.exit_code, False

    async def _ask(self, run: _Run, question: str) -> str:
        """Post the question in the task's thread; the first answer to it, or what to do
        without one."""
        thread = self.hmmm.threads.get(run.task)
        if thread is None or thread.plan is None:
            return "error: the task has no discussion thread to ask in"
        body = {
            "thread": run.task,
            "parent": thread.plan.hash,
            "query_type": "clarification_needed",
            "text": question,
            "parameters": {},
        }
        try:
            posted = await self.hmmm.post(hm.MSG, body)
        except UsageError as error:
            return f"error: the question was not posted ({error}); decide yourself"
        asked = bytes.fromhex(str(posted["entry"]))
        deadline = time.monotonic() + self.settings.ask_timeout_s
        while time.monotonic() < deadline:
            found = self.hmmm.threads.get(run.task)
            for message in found.messages if found is not None else ():
                if message.parent == asked and message.author != self.replica.me:
                    return f"answer: {message.text}"
            self._token(run.task, run.hold)  # stop waiting if the grant went
            await asyncio.sleep(ASK_POLL_S)
        return (
            f"no answer within {self.settings.ask_timeout_s:.0f} s; "
            "go on with your best judgement or finish"
        )

    def _discussion(self, thread: hm.Thread | None) -> list[str]:
        if thread is None:
            return []
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        return wk.discussion_lines(
            (names.get(m.author, m.author.hex()[:8]), m.kind.removeprefix("hmmm."), m.text)
            for m in thread.messages
        )

    async def _deliver(
        self,
        run: _Run,
        tree: Worktree,
        remote: Remote,
        forge: PullRequests | None,
        summary: str,
    ) -> dict[str, Any]:
        """Commit, check the token, push, propose: what the end entry says."""
        token = self._token(run.task, run.hold)
        thread = self.hmmm.threads.get(run.task)
        plan = thread.plan.message.text if thread is not None and thread.plan else ""
        message = wk.commit_message(
            run.spec, summary, token, self.replica.me, run.task, plan, self._discussion(thread)
        )
        commit = await self.workspace.commit(
            tree,
            message,
            name=self.identity.name,
            email=self.identity.email,
            signing_key_pem=self.identity.signing_key_pem,
        )
        if commit is None:
            return {"outcome": "finished", "why": "nothing to change", "summary": summary}
        await self.board.claims.refresh()
        await self.board.refresh()
        token = self._token(run.task, run.hold)
        stale = self.board.claims.book.check_token(run.task, token, self.replica.me, now_ms())
        if stale is not None:
            raise _Stop("refused", f"push refused: {stale}")
        await self.workspace.push(tree, remote)
        link = f"{remote.url}#{tree.branch}"
        if forge is not None:
            proposal = wk.Proposal(
                spec=run.spec,
                plan=plan,
                summary=summary,
                token=token,
                agent=self.replica.me,
                agent_name=self.identity.name,
                model=run.model,
                backend=run.choice.reasoner.name,
                sandbox=self.sandbox.name,
                spent=run.spent.as_map(run.wall_s),
                thread=run.task,
                transcript=self._discussion(thread),
                issue_number=issue_number(run.task),
            )
            link = await forge.open(
                remote.url if not run.spec.repo else run.spec.repo,
                tree.branch,
                wk.pr_title(run.spec),
                wk.pr_body(proposal),
            )
        return {
            "outcome": "finished",
            "why": "done",
            "summary": summary,
            "commit": commit,
            "link": link[: te.MAX_TEXT],
        }

    async def _end(self, run: _Run, tree: Worktree | None, ended: dict[str, Any]) -> None:
        outcome, why = ended.get("outcome", "failed"), str(ended.get("why", ""))
        spent = run.spent.as_map(run.wall_s)
        record = {
            "outcome": outcome,
            "why": why[: te.MAX_TEXT],
            "spent": spent,
            "backend": run.choice.reasoner.name,
            "model": run.model,
            "sandbox": self.sandbox.name,
            "branch": tree.branch if tree is not None else None,
            "commit": ended.get("commit"),
            "link": ended.get("link"),
            "steps": run.steps,
        }
        self.finished.append({"task": run.task, **record})
        try:
            token, live = self._token(run.task, run.hold), True
        except _Stop:
            token, live = run.token, False  # recorded under the last token we held
        try:
            await self.replica.append(tl.ENDED, te.outcome_body(run.task, token, **record))
            if not live:
                log.warning("%s: %s (%s)", run.task, outcome, why)
            elif outcome == "finished":
                summary = str(ended.get("summary", ""))[: te.MAX_TEXT - 200]
                result = f"{summary} ({spent['calls']} model calls, {spent['wall_s']} s)"
                await self.board.report(
                    run.task, te.COMPLETED, result=result, link=ended.get("link")
                )
                log.info("%s: done: %s", run.task, ended.get("link") or "no change")
            else:
                await self._give_up(run.task, f"{outcome}: {why}")
        except BzzzError as error:
            log.error("%s: could not record the end (%s): %s", run.task, outcome, error)

    async def _give_up(self, task: str, why: str) -> None:
        """Escalate through HMMM and fail the task (which releases the claim)."""
        reason = why[: hm.MAX_TEXT - 100]
        with contextlib.suppress(UsageError):
            await self.hmmm.post(hm.ESCALATION, {"thread": task, "reason": reason, "to": "humans"})
        with contextlib.suppress(UsageError):
            await self.board.report(task, te.FAILED, reason=reason[: te.MAX_TEXT])
        log.warning("%s: failed and escalated: %s", task, why)


def replay_name(task: str) -> str:
    """The recording file a replay backend reads for `task`."""
    return re.sub(r"[^a-z0-9._-]+", "-", task.lower()).strip("-.") + ".json"


def turns_path(folder: Path, task: str, token: cl.Token) -> Path:
    return folder / f"{replay_name(task).removesuffix('.json')}-{token[0]}.{token[1]}.json"
