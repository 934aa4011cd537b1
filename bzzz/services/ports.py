"""The ports the services depend on: small protocols that an adapter implements (the
mesh's `Mesh` is the `Replica`), and that a test can implement in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from bzzz.domain.election import Message as ElectionMessage
from bzzz.domain.entry import Entry
from bzzz.domain.execution import (
    ChatMessage,
    FileAnswer,
    ModelInfo,
    Remote,
    Reply,
    RunLimits,
    RunResult,
    ToolSpec,
    Worktree,
)
from bzzz.domain.intake import SourcePoll, Tenure
from bzzz.domain.invite import InviteToken
from bzzz.domain.membership import Membership
from bzzz.domain.roles import Roles
from bzzz.domain.standing import Standing
from bzzz.store import EventStore


class Feed(Protocol):
    """Entries of some kinds as this node stores them (`bzzz.store.feed.Feed`)."""

    async def fresh(self) -> list[Entry]:
        """What arrived since the last call, in store order. One caller at a time."""
        ...


class Replica(Protocol):
    """This node's replica of the cluster's logs: what it holds and knows of its peers,
    and how it writes its own log. Every write is replicated to the peers."""

    me: bytes
    roles: Roles
    store: EventStore  # for reads; writes go through `append`
    heads: dict[bytes, int]
    changed: asyncio.Event  # set whenever the heads move; its reader clears it

    @property
    def membership(self) -> Membership:
        """The membership the logs held decide, folded from the cluster's founding entry."""
        ...

    async def append(
        self, kind: str, payload: dict[str, Any], first: Iterable[bytes] = ()
    ) -> Entry:
        """Sign and store one entry of our own; sent first to the peers `first`."""
        ...

    async def append_many(
        self, items: list[tuple[str, dict[str, Any]]], first: Iterable[bytes] = ()
    ) -> list[Entry]:
        """Several entries of our own in one atomic batch."""
        ...

    def feed(self, kinds: Iterable[str]) -> Feed: ...

    def watch(self, kinds: Iterable[str]) -> asyncio.Event:
        """An event set when entries of these kinds are stored (its one reader clears it)."""
        ...

    async def wait_for_head(self, author: bytes, seq: int, timeout: float) -> bool:
        """Wait until we hold `author`'s log up to `seq`; False on timeout."""
        ...

    def send_election(self, message: ElectionMessage, recipients: tuple[bytes, ...]) -> None:
        """Send to the recipients we are connected to; never relayed, never logged."""
        ...

    def handle_election(
        self,
        on_message: Callable[[ElectionMessage], None] | None,
        on_link_lost: Callable[[bytes], None] | None,
    ) -> None:
        """Who gets election messages addressed to us and news of lost links."""
        ...

    def connected(self) -> frozenset[bytes]:
        """The peers we have a live session with."""
        ...

    def standing(self) -> Standing:
        """This node as a leader candidate."""
        ...

    def peer_standing(self, peer: bytes) -> Standing | None:
        """A connected peer's standing as it last announced it."""
        ...


class Inviters(Protocol):
    """Reaching an inviter with a token: log in, get admitted, copy every log it holds
    into our store. Raises `PeerRefused`, `PeerUnreachable`, `ConnectionClosed` or
    `ProtocolError` (code `wrong-cluster` when the inviter is of another cluster)."""

    async def join(self, token: InviteToken, name: str) -> None: ...


class TaskSource(Protocol):
    """Where tasks come from (`bzzz.tasks`): a local folder, GitHub, a Hive API. Only the
    elected admin polls, so one poll per cluster reaches the outside world."""

    @property
    def name(self) -> str:
        """Stable across the cluster and across restarts: the log records this source's
        cursor under it, and a new admin resumes from there."""
        ...

    async def poll(self, cursor: Mapping[str, Any] | None) -> SourcePoll:
        """What changed since `cursor` (None: list everything). Raises `SourceError`
        when the source fails as a whole; a part that fails (one file, one repository)
        is a line in `SourcePoll.problems` and the rest is reported."""
        ...


class PostResult(Protocol):
    """What one post to a notifier came to."""

    @property
    def delivered(self) -> bool: ...
    @property
    def retry_after_s(self) -> float | None: ...
    @property
    def error(self) -> str | None:
        """One line, without secrets, when not delivered."""
        ...


class Notifier(Protocol):
    """Where escalations go (`bzzz.notify`: a webhook)."""

    @property
    def name(self) -> str:
        """Where it posts, without secrets: the delivery records name it."""
        ...

    async def post(self, key: str, event: str, payload: Mapping[str, Any]) -> PostResult:
        """One attempt; `key` is the idempotency key. Never raises for the receiver's
        failures: they are a result."""
        ...


class TaskMirror(Protocol):
    """Shows claims where people look (GitHub labels and comments). The log is the
    truth; every call is idempotent (a marker is looked for before anything is posted),
    so a crash between two calls, or a new admin repeating them, never posts twice."""

    def mirrors(self, task: str) -> bool:
        """Whether this mirror shows `task` (e.g. a GitHub issue of a configured repo)."""
        ...

    async def claimed(self, tenure: Tenure) -> None:
        """Label the task in progress; comment who holds it, the claim and the token."""
        ...

    async def released(self, tenure: Tenure) -> None:
        """Remove the in-progress label (a release, a lapsed lease, a failure)."""
        ...

    async def completed(self, tenure: Tenure, result: str, link: str | None) -> None:
        """Remove the label; comment the result and the pull request or branch."""
        ...


class Reasoner(Protocol):
    """A language model server (`bzzz.execution`): Ollama's native API, an
    OpenAI-compatible server, or a replay of a recorded trajectory."""

    @property
    def name(self) -> str:
        """The backend: ollama, openai or replay."""
        ...

    async def models(self) -> list[ModelInfo]:
        """The models the server has, with their context length where it says."""
        ...

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
    ) -> Reply:
        """One turn. Raises `ReasoningError` (an error answer, also mid-stream, or an
        answer that is not the protocol); a model's bad tool arguments are a `ToolCall`
        with raw text, never an exception."""
        ...


class Sandbox(Protocol):
    """Where a model's commands run (`bzzz.execution`): bubblewrap, or unsandboxed when
    configured so explicitly."""

    @property
    def name(self) -> str: ...

    async def run(
        self, command: str, workdir: Path, limits: RunLimits, env: Mapping[str, str]
    ) -> RunResult:
        """Run `command` (a shell line) with `workdir` as its only writable place besides
        a private /tmp, no network, `env` as its whole environment. A command that
        fails, times out or is killed is a result; `SandboxError` only when the sandbox
        itself cannot run."""
        ...


class PullRequests(Protocol):
    """Where a finished task's branch is proposed for review (`bzzz.tasks`: GitHub).
    Tasks whose repository no such adapter handles end with the pushed branch."""

    def handles(self, repo: str) -> bool:
        """Whether `repo` (a task's ``repo``, e.g. ``https://github.com/o/r.git``) is a
        repository of this forge that this adapter may open pull requests on."""
        ...

    async def remote(self, repo: str) -> Remote:
        """Where to fetch `repo` and push its task branches (with the credentials git
        needs in `Remote.env`). Raises `SourceError` when the forge cannot say."""
        ...

    async def open(self, repo: str, branch: str, title: str, body: str) -> str:
        """Open a pull request from `branch` onto the repository's default branch; its
        web URL. Idempotent: when a pull request from `branch` exists already (open or
        closed), its URL, and nothing is opened. Raises `SourceError`."""
        ...


class WorktreeFiles(Protocol):
    """The file tools on one worktree (`bzzz.execution.files`): every answer is text
    for the model; nothing a model asks makes them raise."""

    def read(self, path: str) -> FileAnswer: ...
    def write(self, path: str, content: str) -> FileAnswer: ...
    def list(self, path: str) -> FileAnswer: ...


class Workspace(Protocol):
    """Git for the execution loop (`bzzz.execution.git`): a mirror per repository, a
    worktree and branch per task, signed commits, the push. Raises `WorkspaceError`."""

    async def worktree(self, repo: Remote, task: str, agent_id: bytes) -> Worktree:
        """A fresh worktree of the repository's default branch on the task's branch."""
        ...

    def files(self, tree: Worktree) -> WorktreeFiles: ...

    async def commit(
        self, tree: Worktree, message: str, *, name: str, email: str, signing_key_pem: bytes
    ) -> str | None:
        """Commit everything changed, signed; its hash, or None when nothing changed."""
        ...

    async def push(self, tree: Worktree, remote: Remote) -> None:
        """Push the task's branch; never force."""
        ...
