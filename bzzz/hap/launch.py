"""Finding the node a portal talks to: the agent already running on the home (the
portal attaches to it), or a node the portal starts for the home and stops when it
quits. Either way the portal speaks to it through its control socket only, and the home
lock keeps a second process from writing the same identity's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bzzz.agent.control import ask, socket_path
from bzzz.agent.lock import LOCK_FILE
from bzzz.errors import UsageError

LOG_FILE = "hap-node.log"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def answers(home: Path) -> bool:
    """Whether a node answers on the home's control socket."""
    try:
        return ask(home, {"op": "status"}, timeout=5.0) is not None
    except UsageError:
        return False


@dataclass
class StartedNode:
    """A node this portal started: stopped when the portal quits."""

    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.home / LOG_FILE

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(STOP_TIMEOUT_S)


def _holder(home: Path) -> int | None:
    """The pid the home lock names (the process that writes this identity's log)."""
    try:
        return int((home / LOCK_FILE).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error:") or " ERROR " in line]
    found = (errors or lines or ["no output"])[-1]
    return found.removeprefix("error:").strip()


def start_node(
    home: Path,
    *,
    listen: str | None = None,
    peers: list[str] | None = None,
    mdns: bool = True,
    timeout: float = START_TIMEOUT_S,
) -> StartedNode:
    """Start this home's node with its own decisions off (`bzzz hap --node-only`) and
    wait until its control socket answers. Its log goes to `HOME/hap-node.log`."""
    socket_path(home)  # a home too long for a socket is refused before anything starts
    if answers(home):
        raise UsageError(f"a node already runs on {home}: attach to it (`bzzz hap` does)")
    args = [sys.executable, "-m", "bzzz", "hap", "--home", str(home), "--node-only"]
    args += ["--parent", str(os.getpid())]
    if listen is not None:
        args += ["--listen", listen]
    for peer in peers or []:
        args += ["--peer", peer]
    if not mdns:
        args.append("--no-mdns")
    log_path = home / LOG_FILE
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True
        )
    finally:
        os.close(fd)
    started = StartedNode(home, proc)
    deadline = time.monotonic() + timeout
    while not (_holder(home) == proc.pid and answers(home)):
        if proc.poll() is not None:
            raise UsageError(f"the node for {home} did not start: {_last_error(log_path)}")
        if time.monotonic() > deadline:
            started.stop()
            raise UsageError(
                f"the node for {home} did not answer within {timeout:.0f} s (see {log_path})"
            )
        time.sleep(0.1)
    return started
