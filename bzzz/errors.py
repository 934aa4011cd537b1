"""One exception hierarchy for everything BZZZ reports to a person or a peer.

    BzzzError                  raised on purpose; the message is for a person
    ├── UsageError             bad input or an impossible request; nothing changed
    │   ├── ConfigError        the node home or its config.yaml
    │   ├── AddressError (position)  a UCXL address breaks its grammar
    │   ├── NotFoundError      what was asked for does not exist (HTTP 404)
    │   └── BundleError        an unreadable or damaged bundle
    │       └── NotABundleError
    ├── EntryError (code)      an entry breaks the format or a chain rule
    ├── StoreError             the event store could not be opened or written
    │   └── ConflictError      another writer won a race; retrying is safe
    ├── SourceError            a task source (GitHub, Hive) failed as a whole
    ├── ReasoningError         a model server failed or answered what is not its protocol
    ├── SandboxError           a sandbox cannot be set up (not a command's own failure)
    ├── WorkspaceError         a git command of the execution loop failed
    ├── UcxiError (status)     a UCXI server refused a request or could not be reached
    └── PeerError              a connection to a peer failed or ended
        ├── PeerUnreachable    it could not be dialed
        ├── PeerRefused        it refused our login (not a member, a spent token)
        ├── ConnectionClosed   the connection ended
        ├── PeerDown           its heartbeats stopped
        └── ProtocolError (code)  it sent what the protocol does not allow
            └── PeerMisbehaved    it sent entries an honest peer would not

Front ends catch `BzzzError` and print its message as one line; anything else escaping
is a bug, not a user error. Errors of the libraries underneath (asyncssh, the OS's
sockets) become `PeerError`s where the mesh touches them (`bzzz.mesh.transport` and
`bzzz.mesh.framing`), database errors become `StoreError`s in `bzzz.store`, and HTTP
errors of task sources become `SourceError`s in `bzzz.tasks`.
"""

from __future__ import annotations


class BzzzError(Exception):
    """Base of every error BZZZ raises on purpose. The message is meant for a person."""


class UsageError(BzzzError):
    """The caller asked for something malformed or impossible; nothing was changed."""


class ConfigError(UsageError):
    """The node home or its config.yaml is missing or invalid."""


class NotFoundError(UsageError):
    """What was asked for (a piece of context, a task, a thread) does not exist here."""


class AddressError(UsageError):
    """A UCXL address (`bzzz.domain.ucxl`) breaks its grammar.

    `position` is the 0-based index of the first character that is wrong (the text's
    length when it ended too soon), `expected` says in a few words what the grammar
    allows there, and the message puts both in a sentence for a person.
    """

    def __init__(self, position: int, expected: str, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.expected = expected


class EntryError(BzzzError):
    """An entry breaks the format or a chain rule.

    `code` is a stable slug (e.g. ``bad-signature``) that scripts and tests can rely on;
    the message explains it in words.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StoreError(BzzzError):
    """The event store could not be opened or written."""


class ConflictError(StoreError):
    """Another writer changed a log between our read and our write; retrying is safe."""


class SourceError(BzzzError):
    """A task source failed as a whole (a refused token, an unreachable server, its
    errors); the message names the source and never holds a secret. `retry_after_s`:
    how long to wait before the next try, when the source said or it is a 5xx."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ReasoningError(BzzzError):
    """A reasoning backend failed: unreachable, an HTTP error, an ``{"error": ...}``
    (also mid-stream), or an answer that breaks its protocol. `retry_after_s` when the
    server said or it is worth another try; the message never holds a secret."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SandboxError(BzzzError):
    """A sandbox could not be set up or is not available here (bubblewrap missing, no
    user namespaces). A command that fails inside a sandbox is a result, not this."""


class WorkspaceError(BzzzError):
    """A git command of the execution loop failed (a mirror, a worktree, a commit, a
    push); the message is git's own first line."""


class UcxiError(BzzzError):
    """A UCXI server (`bzzz.client`) answered with an error, or could not be reached
    (`status` 0); the message is the server's or says what failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PeerError(BzzzError):
    """A connection to a peer failed or ended."""


class PeerUnreachable(PeerError):
    """The peer could not be dialed (no route, nothing listening, a timeout)."""


class PeerRefused(PeerError):
    """The peer refused our login: we are not a member to it, or a token is spent."""


class ConnectionClosed(PeerError):
    """The connection ended (the other side closed it, or the network failed)."""


class PeerDown(PeerError):
    """The peer's heartbeats stopped."""


class ProtocolError(PeerError):
    """A peer sent something the mesh protocol does not allow; `code` is a stable slug."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PeerMisbehaved(ProtocolError):
    """A peer sent entries an honest peer would not (invalid ones, or its own fork)."""


class BundleError(UsageError):
    """A bundle file is unreadable or damaged."""


class NotABundleError(BundleError):
    """The file is missing or is not a bundle at all (as opposed to a damaged one)."""


def one_line(exc: BaseException) -> str:
    """The first line of what a library exception says, for a one-line message."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
