"""`bzzz service install / uninstall`, through the real command.

systemd is not PID 1 on the machines these tests were written on: there the unit is
written to a folder of the test's own (`--unit-dir`, or XDG_CONFIG_HOME for a user unit)
and checked with `systemd-analyze verify`, and the test that starts it for real skips,
saying so. Nothing here writes to /etc."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bzzz.cli.app import main
from bzzz.home.keys import load_identity
from bzzz.ops import systemd
from tests.support.agents import free_port
from tests.support.cli import Run, assert_one_line_error, bzzz, make_home

PROGRAM = str(Path(sys.executable).parent / "bzzz")
needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def analyze(text: str, tmp_path: Path) -> str:
    """What `systemd-analyze verify` says on stderr about the unit (nothing, if good)."""
    folder = tmp_path / f"verify-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "bzzz.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(folder / "bzzz.service")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stderr + ("" if result.returncode == 0 else f"exit {result.returncode}")


def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               *args: str) -> Run:  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["bzzz", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


@needs_analyze
def test_print_shows_a_unit_that_verifies_and_writes_nothing(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    config_home = tmp_path / "config"
    result = bzzz("service", "install", "--print", "--home", str(home),
                  env={"XDG_CONFIG_HOME": str(config_home)})  # fmt: skip
    assert result.code == 0, result
    assert result.err == ""
    text = result.out
    assert f"ExecStart={PROGRAM} agent --home {home}\n" in text
    assert f"ReadWritePaths={home}\n" in text
    assert f"User={pwd.getpwuid(home.stat().st_uid).pw_name}\n" in text
    assert "Type=notify\n" in text and "SyslogIdentifier=bzzz\n" in text
    assert analyze(text, tmp_path) == ""
    assert not config_home.exists()


def test_print_needs_no_root_and_installing_a_system_unit_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path / "home")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    shown = in_process(monkeypatch, capsys, "service", "install", "--print", "--home", str(home))
    assert shown.code == 0 and "[Service]" in shown.out, shown
    refused = in_process(monkeypatch, capsys, "service", "install", "--home", str(home))
    assert_one_line_error(refused, "needs root", "--user", "--print")
    refused = in_process(monkeypatch, capsys, "service", "uninstall")
    assert_one_line_error(refused, "needs root")


@needs_analyze
def test_a_home_of_another_user_runs_as_that_user_without_capabilities(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the home to another user")
    home = make_home(tmp_path / "home")
    owner = pwd.getpwnam("daemon")  # a system user every Debian has (base-passwd)
    os.chown(home, owner.pw_uid, owner.pw_gid)
    result = bzzz("service", "install", "--print", "--home", str(home))
    assert result.code == 0, result
    assert "User=daemon\n" in result.out
    assert "CapabilityBoundingSet=\n" in result.out
    assert analyze(result.out, tmp_path) == ""
    # A user unit runs as whoever installs it: not for a home that is not theirs.
    refused = bzzz("service", "install", "--user", "--print", "--home", str(home))
    assert_one_line_error(refused, "not to you", "without --user")


@needs_analyze
def test_install_refuses_what_systemd_analyze_only_warns_about(tmp_path: Path) -> None:
    """systemd calls User=nobody unsafe (a warning, exit 0): install refuses it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the home to another user")
    home = make_home(tmp_path / "home")
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    units = tmp_path / "units"
    refused = bzzz("service", "install", "--home", str(home), "--unit-dir", str(units))
    assert_one_line_error(refused, "systemd-analyze verify refused the unit", "nobody")
    assert not units.exists()


@needs_analyze
@pytest.mark.slow
def test_install_writes_a_checked_unit_and_uninstall_removes_it(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    units = tmp_path / "units"
    printed = bzzz("service", "install", "--print", "--home", str(home)).out
    result = bzzz("service", "install", "--home", str(home), "--unit-dir", str(units))
    assert result.code == 0, result
    unit = units / "bzzz.service"
    assert unit.read_text() == printed
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert f"wrote {unit}" in " ".join(result.out.split())
    assert "not started: --unit-dir was given" in result.err
    assert "systemctl daemon-reload && systemctl enable --now bzzz.service" in result.err
    # Again: the unit is ours, so it is replaced.
    assert bzzz("service", "install", "--home", str(home), "--unit-dir", str(units)).code == 0
    removed = bzzz("service", "uninstall", "--unit-dir", str(units))
    assert removed.code == 0, removed
    assert not unit.exists()
    again = bzzz("service", "uninstall", "--unit-dir", str(units))
    assert_one_line_error(again, "no unit at", "nothing to uninstall")


@needs_analyze
@pytest.mark.slow
def test_a_unit_file_bzzz_did_not_write_is_left_alone(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    units = tmp_path / "units"
    units.mkdir()
    foreign = units / "bzzz.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    refused = bzzz("service", "install", "--home", str(home), "--unit-dir", str(units))
    assert_one_line_error(refused, "was not written by `bzzz service install`", "--name")
    refused = bzzz("service", "uninstall", "--unit-dir", str(units))
    assert_one_line_error(refused, "was not written by `bzzz service install`")
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    other = bzzz("service", "install", "--home", str(home), "--unit-dir", str(units),
                 "--name", "bzzz-alpha")  # fmt: skip
    assert other.code == 0, other
    assert (units / "bzzz-alpha.service").exists()


@needs_analyze
def test_a_user_unit_goes_to_the_users_config_folder(tmp_path: Path) -> None:
    if systemd.running("user"):
        pytest.skip("a systemd user manager runs here: this would start the agent")
    home = make_home(tmp_path / "home")
    config_home = tmp_path / "config"
    result = bzzz("service", "install", "--user", "--home", str(home),
                  env={"XDG_CONFIG_HOME": str(config_home)})  # fmt: skip
    assert result.code == 0, result
    unit = config_home / "systemd" / "user" / "bzzz.service"
    assert "PrivateUsers=yes\n" in unit.read_text()
    assert "User=" not in unit.read_text()
    assert "not started: " in result.err
    assert "systemctl --user daemon-reload" in result.err
    removed = bzzz("service", "uninstall", "--user", env={"XDG_CONFIG_HOME": str(config_home)})
    assert removed.code == 0, removed
    assert not unit.exists()


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path: Path) -> None:
    missing = bzzz("service", "install", "--print", "--home", str(tmp_path / "none"))
    assert_one_line_error(missing, "no node home", "bzzz init")
    home = make_home(tmp_path / "home")
    bad_name = bzzz("service", "install", "--print", "--home", str(home), "--name", "a b")
    assert_one_line_error(bad_name, "unit name")
    broken = home / "config.yaml"
    broken.write_text(broken.read_text() + "\nnonsense: 1\n")
    bad_config = bzzz("service", "install", "--print", "--home", str(home))
    assert_one_line_error(bad_config, "nonsense", "unknown key")


def _journal_of(name: str, agent_id: str) -> list[dict[str, str]]:
    out = subprocess.run(
        ["journalctl", "-u", name, "-o", "json", "--no-pager", f"BZZZ_AGENT={agent_id}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_unit_starts_for_real_where_systemd_is_pid_1(tmp_path: Path) -> None:
    if not systemd.running("system"):
        pytest.skip(
            f"{systemd.why_not_running('system')}: the unit cannot be started here, only "
            "checked by systemd-analyze verify (the other tests)"
        )
    if os.geteuid() != 0:
        pytest.skip("installing a system unit needs root")
    port = free_port()
    home = make_home(tmp_path / "home", "--new-cluster", "svc", "--listen", f"127.0.0.1:{port}")
    name = f"bzzz-test-{uuid.uuid4().hex[:8]}"
    agent_id = load_identity(home).public_key.hex()
    installed = bzzz("service", "install", "--home", str(home), "--name", name, timeout=180)
    try:
        assert installed.code == 0, installed
        assert f"{name}.service enabled and active" in installed.out
        status = subprocess.run(
            ["systemctl", "show", "-p", "StatusText", "--value", f"{name}.service"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert f"listening on 127.0.0.1:{port}" in status
        deadline = time.monotonic() + 10
        while not (entries := _journal_of(name, agent_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert entries, "no journal entry carries BZZZ_AGENT"
        assert entries[0]["SYSLOG_IDENTIFIER"] == "bzzz"
        assert entries[0]["CODE_FILE"].endswith(".py")
    finally:
        removed = bzzz("service", "uninstall", "--name", name, timeout=120)
    assert removed.code == 0, removed
    assert not Path(f"/etc/systemd/system/{name}.service").exists()
