"""A machine over SSH (asyncssh): log in with a key (a file, or the SSH agent's),
never a password; check the host key against known_hosts, OpenSSH's way; run commands
and copy files over SFTP.

Host keys: a host known_hosts names must show one of the keys it lists there (a changed
key is refused, with the line to remove if the change is expected); a host it does not
name is asked about (`ask`: its fingerprint, yes or no) or taken with `accept_new`, and
then written to known_hosts. Errors become `PeerError`s with one line that says what to
do: `PeerUnreachable` (no route, nothing listening), `PeerRefused` (the host refused our
key), `PeerError` (its host key is not the one we know, or it was declined).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bzzz.domain.deploy import Target
from bzzz.errors import PeerError, PeerRefused, PeerUnreachable, UsageError, one_line

CONNECT_TIMEOUT_S = 20.0
Ask = Callable[[str, str, str], bool]  # (host text, key type, fingerprint) -> trust it?


@dataclass(frozen=True, slots=True)
class Ran:
    """A remote command's exit code and output."""

    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """The last line it wrote on stderr (else stdout): usually the error."""
        for text in (self.err, self.out):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                return lines[-1]
        return f"exit {self.code}"


@dataclass(frozen=True, slots=True)
class HostKeyPolicy:
    known_hosts: Path
    accept_new: bool = False
    ask: Ask | None = None  # None: nobody to ask (a first contact is refused)


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def _pattern(target: Target) -> str:
    """The host as known_hosts names it: `host`, or `[host]:port` off port 22."""
    return target.host if target.port == 22 else f"[{target.host}]:{target.port}"


class _Client(asyncssh.SSHClient):
    """Checks the host key ourselves, so that a first contact can be asked about and a
    changed key said plainly."""

    def __init__(self, target: Target, policy: HostKeyPolicy, known: list[asyncssh.SSHKey]):
        self.target = target
        self.policy = policy
        self.known = known
        self.problem: str | None = None
        self.accepted: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        fingerprint = key.get_fingerprint()
        where = str(self.policy.known_hosts)
        if self.known:  # asyncssh took a known key already: this one is not one of them
            self.problem = (
                f"the host key of {self.target.host}:{self.target.port} CHANGED: it showed "
                f"{key.get_algorithm()} {fingerprint}, which {where} does not list for it; "
                "refusing (it may be an attack). If the machine was reinstalled, remove the "
                f"old key with: ssh-keygen -f {where} -R '{_pattern(self.target)}'"
            )
            return False
        name = f"{self.target.host}:{self.target.port}"
        if self.policy.accept_new:
            self.accepted = key
            return True
        if self.policy.ask is not None and self.policy.ask(name, key.get_algorithm(), fingerprint):
            self.accepted = key
            return True
        self.problem = (
            f"{name} is not in {where} (its key: {key.get_algorithm()} {fingerprint}); "
            "check the fingerprint on the machine (ssh-keygen -lf /etc/ssh/ssh_host_*.pub) "
            "and deploy again answering yes, or pass --accept-new"
        )
        return False


def _known_keys(policy: HostKeyPolicy, target: Target) -> tuple[list[asyncssh.SSHKey], list]:  # type: ignore[type-arg]
    """The keys known_hosts trusts for the target, and the revoked ones."""
    path = policy.known_hosts
    if not path.exists():
        return [], []
    try:
        found = asyncssh.match_known_hosts(
            str(path), target.host, target.host, None if target.port == 22 else target.port
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {one_line(exc)}") from None
    return list(found[0]), list(found[2])


def _remember(policy: HostKeyPolicy, target: Target, key: asyncssh.SSHKey) -> None:
    """Append the key to known_hosts (0600 when made; its folder 0700)."""
    path = policy.known_hosts
    line = f"{_pattern(target)} {key.export_public_key().decode().split()[0]} "
    line += key.export_public_key().decode().split()[1] + "\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line)
    except OSError as exc:
        raise UsageError(f"cannot add the host key to {path}: {one_line(exc)}") from None


def _client_keys(identity: Path | None) -> list[asyncssh.SSHKey] | None:
    """The key to log in with: the file given, else None (the agent's and ~/.ssh's)."""
    if identity is None:
        return None
    try:
        return [asyncssh.read_private_key(str(identity))]
    except OSError as exc:
        raise UsageError(f"--identity {identity}: {one_line(exc)}") from None
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower():
            raise UsageError(
                f"--identity {identity} is encrypted: add it to your SSH agent "
                f"(ssh-add {identity}) and deploy without --identity"
            ) from None
        raise UsageError(f"--identity {identity}: {one_line(exc)}") from None


class SshRemote:
    """One logged-in connection to a host."""

    def __init__(self, target: Target, conn: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self._conn = conn

    @classmethod
    async def connect(
        cls,
        target: Target,
        policy: HostKeyPolicy,
        identity: Path | None = None,
        timeout: float = CONNECT_TIMEOUT_S,
    ) -> SshRemote:
        known, revoked = _known_keys(policy, target)
        keys = _client_keys(identity)
        client = _Client(target, policy, known)
        try:
            conn = await asyncssh.connect(
                target.host,
                target.port,
                username=target.user,
                known_hosts=(known, [], revoked),
                client_factory=lambda: client,
                client_keys=keys,
                password_auth=False,  # never a password
                kbdint_auth=False,
                connect_timeout=timeout,
                config=[],  # the operator's ~/.ssh/config is not read: say it all here
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise PeerError(client.problem or f"{target}: {one_line(exc)}") from None
        except asyncssh.PermissionDenied:
            raise PeerRefused(
                f"{target} refused our key for user {target.user}: put your public key in "
                f"~{target.user}/.ssh/authorized_keys there (ssh-copy-id), or load the right "
                "key in your SSH agent or give it with --identity"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise PeerUnreachable(f"cannot reach {target}: {one_line(exc)}") from None
        except asyncssh.Error as exc:
            raise PeerError(f"{target}: {one_line(exc)}") from None
        if client.accepted is not None:
            _remember(policy, target, client.accepted)
        return cls(target, conn)

    async def run(self, command: str, *, stdin: str | None = None, timeout: float = 300) -> Ran:
        """Run a shell command line; `stdin` goes to it on the channel (secrets go this
        way, never in the command line, which `ps` shows)."""
        try:
            done = await self._conn.run(command, input=stdin, check=False, timeout=timeout)
        except asyncssh.TimeoutError:
            return Ran(124, "", f"timed out after {timeout:.0f} s")
        except (asyncssh.Error, OSError) as exc:
            raise PeerError(f"{self.target}: the connection failed: {one_line(exc)}") from None
        code = done.exit_status if done.exit_status is not None else 255
        return Ran(code, _text(done.stdout), _text(done.stderr))

    async def sizes(self, folder: str) -> dict[str, int]:
        """File name -> size of the files in a remote folder ({} when it is missing)."""
        try:
            async with self._conn.start_sftp_client() as sftp:
                names = await sftp.readdir(folder)
        except asyncssh.SFTPNoSuchFile:
            return {}
        except (asyncssh.Error, OSError) as exc:
            raise PeerError(f"{self.target}: cannot list {folder}: {one_line(exc)}") from None
        return {
            str(n.filename): int(n.attrs.size or 0)
            for n in names
            if n.filename not in (".", "..") and n.attrs.size is not None
        }

    async def put(self, files: list[Path], folder: str) -> None:
        """Copy files into a remote folder (each under a temporary name, then renamed,
        so an interrupted copy never leaves a file that looks whole)."""
        try:
            async with self._conn.start_sftp_client() as sftp:
                for path in files:
                    final = posixpath.join(folder, path.name)
                    part = final + ".part"
                    await sftp.put(str(path), part)
                    await sftp.posix_rename(part, final)
        except (asyncssh.Error, OSError) as exc:
            raise PeerError(f"{self.target}: copying to {folder} failed: {one_line(exc)}") from None

    async def close(self) -> None:
        self._conn.close()
        with contextlib.suppress(Exception):
            await self._conn.wait_closed()


def _text(data: object) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return str(data)
