"""The systemd unit `bzzz service install` writes: every variant passes
`systemd-analyze verify` with nothing at all on stderr (it exits 0 on unknown keys and
bad values, and only says so there), and says what it must about the home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bzzz.errors import ConfigError
from bzzz.home.config import load_config
from bzzz.home.service_unit import (
    MARKER,
    ServicePaths,
    UnitSpec,
    agent_command,
    protect_home,
    quote_arg,
    render_unit,
    service_paths,
    unit_file_name,
)
from bzzz.ops import systemd
from tests.support.cli import bzzz

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)
PROGRAM = str(Path(sys.executable).parent / "bzzz")  # verify checks it is executable


def analyze(text: str, tmp_path: Path, scope: str = "system") -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` run directly on the text (not through bzzz.ops.systemd)."""
    path = tmp_path / "bzzz.service"
    path.write_text(text)
    env = dict(os.environ)
    command = ["systemd-analyze"]
    if scope == "user":
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        command.append("--user")
    return subprocess.run(
        [*command, "verify", str(path)], capture_output=True, text=True, env=env, check=False
    )


def spec(home: str = "/var/lib/bzzz", **changes: object) -> UnitSpec:
    base: dict[str, object] = {
        "command": agent_command([PROGRAM], Path(home)),
        "home": Path(home),
        "node_name": "alpha",
        "user": "bzzz",
        "group": "bzzz",
        "systemd_version": 252,
    }
    base.update(changes)
    return UnitSpec(**base)  # type: ignore[arg-type]


VARIANTS = {
    "system": spec(),
    "system as root": spec(user="root", group="root"),
    "user": spec("/home/alice/.local/share/bzzz", scope="user", user=None, group=None),
    "odd home": spec("/srv/my nodes/50%/$HOME/bzzz"),
    "paths outside": spec(
        paths=ServicePaths((Path("/srv/store dir"), Path("/srv/tasks")), (Path("/opt/tc"),))
    ),
    "home in /tmp": spec("/tmp/bzzz"),
    "unknown version": spec(systemd_version=None),
}


@needs_analyze
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_passes_systemd_analyze_verify_silently(name: str, tmp_path: Path) -> None:
    unit = VARIANTS[name]
    result = analyze(render_unit(unit), tmp_path, unit.scope)
    assert result.stderr == "", result.stderr
    assert result.returncode == 0
    assert systemd.verify(render_unit(unit), "bzzz.service", unit.scope) == []


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_system_unit_runs_the_agent_of_its_home_as_its_owner_and_hardened() -> None:
    text = render_unit(spec())
    assert text.startswith(MARKER)
    d = directives(text)
    assert d["ExecStart"] == [f"{PROGRAM} agent --home /var/lib/bzzz"]
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["User"] == ["bzzz"] and d["Group"] == ["bzzz"]
    assert d["ReadWritePaths"] == ["/var/lib/bzzz"]  # the daemon writes its own config
    assert d["ProtectSystem"] == ["strict"]
    assert d["ProtectHome"] == ["yes"]
    # PrivateTmp= hides /tmp: off when the program itself is there (a checkout in /tmp).
    in_tmp = PROGRAM.startswith(("/tmp/", "/var/tmp/"))
    assert d["NoNewPrivileges"] == ["yes"] and d["PrivateTmp"] == ["no" if in_tmp else "yes"]
    assert d["CapabilityBoundingSet"] == [""]
    assert d["SyslogIdentifier"] == ["bzzz"]
    assert d["Restart"] == ["on-failure"] and d["RestartSec"] == ["2s"]
    assert d["LimitNOFILE"] == ["65536"] and d["LimitCORE"] == ["0"]
    assert d["TasksMax"] == ["4096"]
    assert d["WantedBy"] == ["multi-user.target"]
    assert "RestartSteps" not in d  # systemd 252 does not know it
    assert "PrivateUsers" not in d


def test_back_off_only_where_systemd_knows_it(tmp_path: Path) -> None:
    d = directives(render_unit(spec(systemd_version=254)))
    assert d["RestartSteps"] == ["6"] and d["RestartMaxDelaySec"] == ["2min"]
    installed = systemd.version()
    if shutil.which("systemd-analyze") is None or installed is None or installed >= 254:
        pytest.skip(f"needs systemd-analyze older than 254 (here: {installed})")
    # What the version check prevents: an older systemd only warns, and exits 0.
    result = analyze(render_unit(spec(systemd_version=254)), tmp_path)
    assert result.returncode == 0
    assert "Unknown key" in result.stderr and "RestartSteps" in result.stderr
    problems = systemd.verify(render_unit(spec(systemd_version=254)), "bzzz.service", "system")
    assert any("RestartSteps" in p for p in problems)


def test_a_user_unit_has_no_user_and_says_private_users() -> None:
    d = directives(render_unit(VARIANTS["user"]))
    assert "User" not in d and "CapabilityBoundingSet" not in d
    assert d["PrivateUsers"] == ["yes"]
    assert d["ProtectHome"] == ["read-only"]  # the home is below /home
    assert d["WantedBy"] == ["default.target"]
    assert "Wants" not in d  # network-online.target is the system manager's


def test_root_keeps_its_capabilities_and_is_told_why() -> None:
    text = render_unit(VARIANTS["system as root"])
    assert "CapabilityBoundingSet" not in directives(text)
    assert "setting up uid map: Operation not permitted" in text


def test_odd_paths_are_escaped_for_systemd() -> None:
    d = directives(render_unit(VARIANTS["odd home"]))
    assert d["ExecStart"] == [f'{PROGRAM} agent --home "/srv/my nodes/50%%/$$HOME/bzzz"']
    assert d["ReadWritePaths"] == ['"/srv/my nodes/50%%/$HOME/bzzz"']
    assert d["EnvironmentFile"] == ["-/srv/my nodes/50%%/$HOME/bzzz/service.env"]


def test_paths_outside_the_home_are_writable_or_readable() -> None:
    d = directives(render_unit(VARIANTS["paths outside"]))
    assert d["ReadWritePaths"] == ['/var/lib/bzzz "-/srv/store dir" -/srv/tasks']
    assert d["ProtectHome"] == ["yes"]


def test_a_home_in_tmp_turns_private_tmp_off_and_says_so() -> None:
    text = render_unit(VARIANTS["home in /tmp"])
    assert directives(text)["PrivateTmp"] == ["no"]
    assert "/tmp/bzzz is below /tmp or /var/tmp" in text


def test_protect_home_follows_what_the_daemon_needs() -> None:
    assert protect_home(spec()) == "yes"
    assert protect_home(spec("/home/a/bzzz")) == "read-only"
    assert protect_home(spec("/root/bzzz")) == "read-only"
    assert protect_home(spec(command=("/home/a/venv/bin/bzzz", "agent"))) == "read-only"
    readable = ServicePaths((), (Path("/root/.pyenv/versions/3.11/bin/python3"),))
    assert protect_home(spec(paths=readable)) == "read-only"
    assert protect_home(spec("/homework/bzzz")) == "yes"  # a prefix, not a parent


def test_quoting() -> None:
    assert quote_arg("/a/b") == "/a/b"
    assert quote_arg("a b") == '"a b"'
    assert quote_arg("50%") == "50%%"
    assert quote_arg("$HOME") == "$$HOME"
    assert quote_arg('a"b') == '"a\\"b"'
    assert quote_arg("a\\b") == '"a\\\\b"'
    assert quote_arg("") == '""'
    with pytest.raises(ConfigError, match="line break"):
        quote_arg("a\nb")


def test_what_cannot_be_a_unit_is_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="absolute path"):
        render_unit(spec(command=("bzzz", "agent")))
    with pytest.raises(ConfigError, match="line break"):
        render_unit(spec("/var/lib/bz\nzz"))
    with pytest.raises(ConfigError, match="User="):
        render_unit(spec(user="no body"))
    with pytest.raises(ConfigError, match="unit name"):
        unit_file_name("bzzz.service")
    with pytest.raises(ConfigError, match="unit name"):
        unit_file_name("a b")
    assert unit_file_name("bzzz-alpha") == "bzzz-alpha.service"


@needs_analyze
def test_verify_reports_what_systemd_analyze_only_warns_about() -> None:
    bad = render_unit(spec()).replace("ProtectSystem=strict", "ProtectSystem=bogus")
    problems = systemd.verify(bad, "bzzz.service", "system")
    assert problems and "protect system value" in problems[0], problems
    unknown = render_unit(spec()) + "\n[Service]\nFrobnicate=yes\n"
    assert any("Frobnicate" in p for p in systemd.verify(unknown, "bzzz.service", "system"))


def test_service_paths_name_a_store_and_task_folder_outside_the_home(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    home = tmp_path / "home"
    store = tmp_path / "elsewhere" / "store.db"
    result = bzzz("init", "--home", str(home), "--name", "alpha", "--store-url",
                  f"sqlite:///{store}")  # fmt: skip
    assert result.code == 0, result
    config_file = home / "config.yaml"
    text = config_file.read_text().replace(
        "  sources: []", "  sources:\n  - type: local\n    path: ../tasks\n  - type: local\n"
    )
    text = text.replace("  ro_paths: []", "  ro_paths: [/opt/toolchain]")
    config_file.write_text(text)
    paths = service_paths(home, load_config(home))
    assert paths.writable == (tmp_path / "elsewhere", tmp_path / "tasks")
    assert paths.readable == (Path("/opt/toolchain"),)
