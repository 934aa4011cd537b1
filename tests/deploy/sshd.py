"""A real OpenSSH server (Debian's `openssh-server`, `sshd -f CONFIG`) in a network
namespace, for the deploy tests: key logins only, its host key and authorized_keys in a
folder of the test's own, SFTP on."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def needs_sshd() -> None:
    if shutil.which("ssh-keygen") is None or not Path(SSHD).exists():
        pytest.skip("needs openssh-server (sshd) and ssh-keygen")


def keygen(path: Path) -> Path:
    """A new ed25519 key without a passphrase at `path` (and `path`.pub)."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


@dataclass
class Sshd:
    folder: Path
    address: str
    port: int
    wrap: list[str]  # runs it inside the host's namespace
    client_key: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client_key = keygen(self.folder / "client_key")
        keygen(self.folder / "host_key")
        authorized = self.folder / "authorized_keys"
        authorized.write_text(self.client_key.with_name("client_key.pub").read_text())
        authorized.chmod(0o600)
        (self.folder / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.address}",
                    f"HostKey {self.folder / 'host_key'}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        log = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            [*self.wrap, SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 15
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sshd did not start: {self.log_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        probe = subprocess.run(
            [*self.wrap, "python3", "-c", _PROBE, self.address, str(self.port)],
            capture_output=True,
            timeout=10,
        )
        return probe.returncode == 0

    def log_text(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")

    def new_host_key(self) -> None:
        """The machine 'reinstalled': another host key, and sshd restarted with it."""
        self.stop()
        keygen(self.folder / "host_key")
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


_PROBE = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
    "assert s.recv(4).startswith(b'SSH-')\n"
)
