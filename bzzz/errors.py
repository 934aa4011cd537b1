"""One exception hierarchy for everything BZZZ reports to a person or a peer.

Front ends catch `BzzzError` and print its message as one line; anything else escaping
is a bug, not a user error.
"""

from __future__ import annotations


class BzzzError(Exception):
    """Base of every error BZZZ raises on purpose. The message is meant for a person."""


class UsageError(BzzzError):
    """The caller asked for something malformed or impossible; nothing was changed."""


class ConfigError(UsageError):
    """The node home or its config.yaml is missing or invalid."""


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


class ProtocolError(BzzzError):
    """A peer sent something the mesh protocol does not allow; `code` is a stable slug."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BundleError(UsageError):
    """A bundle file is unreadable or damaged."""


class NotABundleError(BundleError):
    """The file is missing or is not a bundle at all (as opposed to a damaged one)."""


def one_line(exc: BaseException) -> str:
    """The first line of what a library exception says, for a one-line message."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
