"""The bearer token the dashboard's data (and, if asked, /metrics) is served against: a
file only its owner may read (`http.token_file`, by default ``http.token`` in the node
home), made with a random token on the first start with HTTP on. The value never shows
in a message, a log line or a repr; a request's token is compared in constant time."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from bzzz.errors import ConfigError, one_line

TOKEN_KEY = "http.token_file"
MIN_CHARS = 16
MAX_CHARS = 4096


class BearerToken:
    """A token; `matches` is the one way to use it, `reveal` the one way to read it."""

    __slots__ = ("_value", "path")

    def __init__(self, value: str, path: Path) -> None:
        self._value = value.encode("ascii")
        self.path = path

    def matches(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries this token (``Bearer TOKEN``)."""
        if not authorization:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            candidate = given.strip().encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(candidate, self._value)

    def reveal(self) -> str:
        return self._value.decode("ascii")

    def __repr__(self) -> str:
        return f"BearerToken(from {self.path})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a BearerToken is not pickled")


def token_path(home: Path, configured: str) -> Path:
    return home / Path(configured).expanduser()


def load_or_create_token(path: Path, key: str = TOKEN_KEY) -> BearerToken:
    """The token in `path`, made (random, mode 0600) when there is no such file. A file
    others may read, or one that holds no usable token, is a `ConfigError` naming the
    key and the file (never its content)."""
    try:
        _create(path)
    except FileExistsError:
        pass
    except OSError as error:
        raise ConfigError(f"{key}: cannot create {path}: {one_line(error)}") from None
    return _read(path, key)


def _create(path: Path) -> None:
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, value.encode("ascii") + b"\n")
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def _read(path: Path, key: str) -> BearerToken:
    where = f"{key}: {path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where} is not a file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{where} may be read by others (mode {mode:04o}): `chmod 600 {path}`"
            )
        raw = path.read_bytes()[: MAX_CHARS + 2]
    except OSError as error:
        raise ConfigError(f"cannot read {where}: {one_line(error)}") from None
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: a token is printable ASCII") from None
    if not MIN_CHARS <= len(value) <= MAX_CHARS or not value.isprintable() or " " in value:
        raise ConfigError(
            f"{where}: a token is {MIN_CHARS} to {MAX_CHARS} printable characters without "
            "spaces (delete the file to have a new one made)"
        )
    return BearerToken(value, path)
