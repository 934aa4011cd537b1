"""`bzzz deploy` and `bzzz setup` against a real OpenSSH server in a network namespace:
the deploying node's agent runs on one host of a LAN, sshd on another; the deploy runs
on the first host, logs in with a key, copies the wheels over SFTP, and leaves a running
agent that joined the cluster and replicates both ways. Then a step made to fail (a
full disk, a taken port) and the retries, and a changed host key, refused.

The "remote" host shares this machine's file system: each deployment installs into a
folder of the test's own (as root, with --prefix), and the unit goes to a folder of its
own (--unit-dir; systemd is not PID 1 here, so the agent is started detached)."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bzzz.agent.control import ask
from bzzz.deploy import wheels
from bzzz.home.node import init_node
from tests.deploy.sshd import Sshd, needs_sshd
from tests.support.agents import Agent, wait_for
from tests.support.netns import Host, lan

pytestmark = pytest.mark.slow

DEPLOY_TIMEOUT_S = 600


@dataclass
class Rig:
    root: Path
    deployer: Host
    seed: Agent
    sshd: Sshd
    known_hosts: Path

    @property
    def target(self) -> str:
        return f"root@{self.sshd.address}:{self.sshd.port}"

    def bzzz(
        self, *args: str, stdin: str = "", known_hosts: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`bzzz ARGS --home SEED --identity KEY --known-hosts FILE` on the deployer."""
        command = [*self.deployer.wrap, sys.executable, "-m", "bzzz", *args]
        command += ["--home", str(self.seed.home), "--identity", str(self.sshd.client_key)]
        command += ["--known-hosts", str(known_hosts or self.known_hosts)]
        began = time.monotonic()
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
            env={**os.environ, "COLUMNS": "250"},
        )
        took = time.monotonic() - began
        print(f"$ bzzz {' '.join(args)}  # {took:.1f} s, exit {done.returncode}")
        print(done.stdout, done.stderr)
        return done

    def records(self) -> dict[str, dict[str, object]]:
        data = json.loads((self.seed.home / "deploy.json").read_text())
        return {h["target"]: h for h in data["hosts"]}


def _stop_agent(home: Path) -> None:
    """Stop a deployed agent (started detached on the 'remote') by its pid."""
    lock = home / "agent.lock"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # not running
        except BlockingIOError:
            pid = int(os.pread(fd, 32, 0).decode().strip() or 0)
        if pid > 0:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    needs_sshd()
    # The deployer runs in a namespace without the internet: its wheelhouse (the cache
    # every deploy uses) is built here first, from the package index, once per change.
    wheels.bundle(wheels.local_python_tag(), platform.machine())
    root = tmp_path_factory.mktemp("deploy")
    with lan(2) as net:
        deployer, machine = net.hosts
        init_node(
            root / "seed",
            name="seed",
            role="admin",
            cluster="deployed",
            listen=f"{deployer.address}:7420",
        ).close()
        seed = Agent(root / "seed", 7420, host=deployer.address, wrap=deployer.wrap)
        sshd = Sshd(root / "sshd", machine.address, 2222, machine.wrap)
        # A small disk for one deployment, mounted before sshd starts: `ip netns exec`
        # gives sshd a copy of the mount table as it is then (a remount resizes both).
        (root / "small").mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(root / "small")],
            check=True,
            timeout=30,
        )
        try:
            seed.start()
            sshd.start()
            yield Rig(root, deployer, seed, sshd, root / "known_hosts")
        finally:
            for home in root.glob("remote*/home"):
                _stop_agent(home)
            for home in root.glob("small/home"):
                _stop_agent(home)
            if seed.running():
                seed.stop()
            sshd.stop()
            if (root / "small").is_mount():
                subprocess.run(["umount", str(root / "small")], check=False, timeout=30)


def _remote_status(home: Path) -> dict[str, object]:
    answer = ask(home, {"op": "status"})
    assert answer is not None and answer["ok"], answer
    return dict(answer["status"])


def _started(output: str) -> list[str]:
    """The steps a deploy's output says it started, in order."""
    return [
        line.split("  ", 1)[1].removesuffix(" ...")
        for line in output.splitlines()
        if line.endswith(" ...") and "  " in line
    ]


def test_a_fresh_host_becomes_a_joined_agent_and_a_second_deploy_changes_nothing(
    rig: Rig,
) -> None:
    prefix, units = rig.root / "remote1", rig.root / "units1"
    began = time.monotonic()
    first = rig.bzzz(
        "deploy", rig.target, "--accept-new", "--prefix", str(prefix), "--unit-dir", str(units)
    )
    fresh_s = time.monotonic() - began
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{rig.target}: deployed in" in first.stdout
    assert _started(first.stdout) == [
        "check the host",
        "stop a running agent",
        "install BZZZ",
        "create the node home",
        "invite and join",
        "install and start the service",
        "verify it joined and replicates",
    ]
    # the fallback where systemd does not run is said, not silent
    assert "systemd is not the service manager there" in first.stdout
    assert "started detached instead" in first.stdout
    assert (units / "bzzz.service").read_text().startswith("# Written by `bzzz service install`")
    # the host key was taken (--accept-new) and written down
    assert f"[{rig.sshd.address}]:2222 ssh-ed25519 " in rig.known_hosts.read_text()

    home = prefix / "home"
    status = _remote_status(home)
    assert status["cluster"] == "deployed"
    seed_id = rig.seed.agent_id
    assert seed_id in {p["agent_id"] for p in status["peers"] if p["connected"]}  # type: ignore[attr-defined]
    assert rig.seed.heads().get(str(status["agent_id"]), 0) >= 1
    # the state file: 0600, every step done, no secret in it
    state_file = rig.seed.home / "deploy.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert "bzzz-invite-" not in state_file.read_text()
    assert "bzzz-invite-" not in (home / "agent.log").read_text()
    record = rig.records()[rig.target]
    assert all(s["state"] == "done" for s in record["steps"])  # type: ignore[attr-defined]

    began = time.monotonic()
    again = rig.bzzz("deploy", rig.target, "--prefix", str(prefix), "--unit-dir", str(units))
    again_s = time.monotonic() - began
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is installed already (same wheel); copied 0 wheels" in again.stdout
    assert "kept the existing node home" in again.stdout
    assert "already a member of cluster deployed" in again.stdout
    assert "stopped the agent" in again.stdout  # and started it again
    assert _remote_status(home)["agent_id"] == status["agent_id"]
    wait_for(
        lambda: seed_id in {p["agent_id"] for p in _remote_status(home)["peers"] if p["connected"]},  # type: ignore[attr-defined]
        what="the redeployed agent linked again",
    )
    print(f"FIGURES deploy fresh {fresh_s:.1f} s, again {again_s:.1f} s (wall, CLI included)")


def test_a_full_disk_and_a_taken_port_fail_their_steps_and_retry_continues(rig: Rig) -> None:
    small = rig.root / "small"  # a 64 MiB tmpfs
    args = ["--prefix", str(small), "--unit-dir", str(rig.root / "units2"), "--name", "second"]
    # a second node on the same machine, on a port of its own
    failed = rig.bzzz("deploy", rig.target, "--listen", "0.0.0.0:7422", *args)
    assert failed.returncode == 1
    assert "FAILED check the host" in failed.stdout
    assert f"only 64 MiB free at {small}" in failed.stdout
    assert "bzzz deploy --retry" in failed.stderr and "Traceback" not in failed.stderr
    assert rig.records()[rig.target]["steps"][0]["state"] == "failed"  # type: ignore[index]

    subprocess.run(["mount", "-o", "remount,size=700m", str(small)], check=True, timeout=30)
    blocker = subprocess.Popen(
        [*rig.sshd.wrap, "python3", "-c", _LISTEN, "0.0.0.0", "7422"],
        stdout=subprocess.PIPE,
    )
    try:
        assert blocker.stdout is not None and blocker.stdout.readline().strip() == b"listening"
        taken = rig.bzzz("deploy", "--retry", rig.target)
        assert taken.returncode == 1
        assert "done install BZZZ" in taken.stdout and "done invite and join" in taken.stdout
        assert "FAILED install and start the service" in taken.stdout
        assert "port 7422 on the host is taken" in taken.stdout
        states = [s["state"] for s in rig.records()[rig.target]["steps"]]  # type: ignore[attr-defined]
        assert states == ["done"] * 5 + ["failed", "pending"]
    finally:
        blocker.kill()
        blocker.wait(10)

    retried = rig.bzzz("deploy", "--retry")  # every unfinished deployment
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert _started(retried.stdout) == [
        "check the host",
        "install and start the service",
        "verify it joined and replicates",
    ]
    status = _remote_status(small / "home")
    assert status["name"] == "second" and status["listen"] == "0.0.0.0:7422"


def test_setup_finds_the_listed_machines_asks_deploys_and_offers_retries(rig: Rig) -> None:
    hosts = rig.root / "hosts.txt"
    nobody = f"root@{rig.sshd.address}:2299"  # nothing listens there: refused at once
    hosts.write_text(f"# the cluster\n{rig.target} developer\n{nobody}\n")
    done = rig.bzzz(
        "setup",
        "--hosts",
        str(hosts),
        "--no-mdns",
        "--prefix",
        str(rig.root / "remote1"),
        "--unit-dir",
        str(rig.root / "units1"),
        "--accept-new",
        # which machines; a role for each; retry the failed one: yes, then no
        stdin="all\nreviewer\ndeveloper\ny\nn\n",
        known_hosts=rig.root / "known_hosts_setup",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Deploy to which machines?" in done.stdout
    assert f"role for {rig.target}" in done.stdout and f"role for {nobody}" in done.stdout
    assert f"{rig.target}: deployed in" in done.stdout
    # joined as a reviewer, or (after the first test) a member already: no second invite
    assert "joined cluster deployed" in done.stdout or "already a member" in done.stdout
    assert done.stdout.count("Retry the 1 failed machine(s) from where they stopped?") == 2
    assert done.stdout.count(f"{nobody}  FAILED check the host") == 2  # tried twice
    assert "cannot reach" in done.stderr and "retry later with: bzzz deploy --retry" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    saved = rig.records()
    assert saved[nobody]["steps"][0]["state"] == "failed"  # type: ignore[index]
    del saved[nobody]
    (rig.seed.home / "deploy.json").write_text(  # the other tests retry every unfinished one
        json.dumps({"version": 1, "hosts": list(saved.values())})
    )


def test_a_changed_host_key_is_refused_in_one_line(rig: Rig) -> None:
    unknown = rig.bzzz(
        "deploy",
        rig.target,
        "--prefix",
        str(rig.root / "remote1"),
        known_hosts=rig.root / "empty_known_hosts",
    )
    assert unknown.returncode == 1
    assert "is not in" in unknown.stdout and "--accept-new" in unknown.stdout

    rig.sshd.new_host_key()
    refused = rig.bzzz("deploy", rig.target, "--prefix", str(rig.root / "remote1"))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stdout + refused.stderr
    lines = [ln for ln in refused.stdout.splitlines() if "CHANGED" in ln]
    assert len(lines) == 1, refused.stdout
    assert "FAILED check the host" in lines[0] and "ssh-keygen -f" in lines[0]
    assert rig.records()[rig.target]["steps"][0]["state"] == "failed"  # type: ignore[index]


_LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind((sys.argv[1], int(sys.argv[2])))\n"
    "s.listen()\n"
    "print('listening', flush=True)\n"
    "time.sleep(600)\n"
)
