"""Secrets a task source needs (a GitHub token): read from a file only its owner may read,
or from an environment variable, and kept in a `Secret` that never shows its value in a
message, a log line, an exception or a repr."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from bzzz.errors import ConfigError

MAX_SECRET = 4096


class Secret:
    """A secret value; `reveal()` is the one way to read it. `origin` names where it came
    from (e.g. ``the environment variable GITHUB_TOKEN``), for messages."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled")


def load_secret(
    env: str | None,
    file: str | None,
    home: Path,
    environ: Mapping[str, str] | None = None,
) -> Secret | None:
    """The secret from `file` (relative to `home`; mode 0600 or stricter) when one is
    named, else from the environment variable `env`; None when neither holds one.
    A named file that is missing, unreadable, empty or readable by others is a
    `ConfigError` naming the file (never its content)."""
    if file is not None:
        return _from_file(home / Path(file).expanduser())
    environ = os.environ if environ is None else environ
    if env is None:
        return None
    value = environ.get(env, "").strip()
    if not value:
        return None
    origin = f"the environment variable {env}"
    _check(value, origin)
    return Secret(value, origin)


def _from_file(path: Path) -> Secret:
    origin = f"the file {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"the token file {path} is missing") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the token file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the token file {path} has mode {mode:04o}: others may read it; "
                f"make it 0600 (chmod 600 {path})"
            )
        raw = handle.read(MAX_SECRET + 1)
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {path} is not text") from None
    if not value:
        raise ConfigError(f"the token file {path} is empty")
    _check(value, origin)
    return Secret(value, origin)


def _check(value: str, origin: str) -> None:
    """A token is one word of printable ASCII: it goes into an HTTP header as it is."""
    if len(value) > MAX_SECRET:
        raise ConfigError(f"the token in {origin} is longer than {MAX_SECRET} characters")
    if not all("!" <= c <= "~" for c in value):
        raise ConfigError(f"the token in {origin} holds spaces or characters a token cannot have")
