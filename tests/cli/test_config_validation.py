"""Config errors name what is wrong where a person set it: the key of config.yaml, the
`BZZZ_*` variable, the election's timeouts together, the project and its roles file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from bzzz.home.config import ElectionConfig, parse_address
from tests.support.cli import assert_one_line_error, bzzz, make_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "node")


def set_in_config(home: Path, text: str) -> None:
    config = home / "config.yaml"
    config.write_text(config.read_text() + text)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("BZZZ_STORE_URL", "", ["BZZZ_STORE_URL: ", "store.url"]),
        ("BZZZ_MESH_MDNS", "perhaps", ["BZZZ_MESH_MDNS: ", "valid boolean"]),
        ("BZZZ_MESH_PEERS", "127.0.0.1:1,nonsense", ["BZZZ_MESH_PEERS: ", "'nonsense'"]),
        ("BZZZ_NAME", "no spaces please", ["BZZZ_NAME: ", "letters, digits"]),
        ("BZZZ_LOG_LEVEL", "loud", ["BZZZ_LOG_LEVEL: "]),
        ("BZZZ_ELECTION_HEARTBEAT_MS", "many", ["BZZZ_ELECTION_HEARTBEAT_MS: "]),
    ],
)
def test_an_environment_error_names_the_variable(
    home: Path, variable: str, value: str, words: list[str]
) -> None:
    result = bzzz("id", "--home", str(home), env={variable: value})
    assert_one_line_error(result, *words)
    assert not result.err.startswith(f"error: {home}")  # the file is not to blame


def test_a_file_error_still_names_the_file_and_key(home: Path) -> None:
    set_in_config(home, "project: 5\n")
    assert_one_line_error(bzzz("id", "--home", str(home)), "config.yaml: project")


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("  election_min_ms: 3000\n  election_max_ms: 2000\n", ["(have 100, 3000, 2000)"]),
        ("  heartbeat_ms: 1000\n  election_min_ms: 1000\n", ["(have 1000, 1000, 2000)"]),
    ],
)
def test_election_timeouts_are_checked_when_the_config_loads(
    tmp_path: Path, section: str, words: list[str]
) -> None:
    where = make_home(tmp_path / "node")
    config = where / "config.yaml"
    text = config.read_text()
    start = text.index("election:\n")
    end = text.index("\n", text.index("election_max_ms"))
    config.write_text(text[:start] + "election:\n" + section + text[end + 1 :])
    result = bzzz("log", "show", "--home", str(where))
    assert_one_line_error(
        result, "config.yaml: election", "heartbeat_ms < election_min_ms <= election_max_ms", *words
    )


def test_election_timeouts_from_the_environment_name_the_variable(home: Path) -> None:
    result = bzzz("id", "--home", str(home), env={"BZZZ_ELECTION_ELECTION_MIN_MS": "5000"})
    assert_one_line_error(result, "election", "BZZZ_ELECTION_ELECTION_MIN_MS", "5000")


def test_election_config_rule() -> None:
    ElectionConfig(heartbeat_ms=100, election_min_ms=1000, election_max_ms=1000)
    with pytest.raises(ValidationError, match="heartbeat_ms < election_min_ms"):
        ElectionConfig(election_min_ms=2500, election_max_ms=2000)
    with pytest.raises(ValidationError, match="heartbeat_ms < election_min_ms"):
        ElectionConfig(heartbeat_ms=1000, election_min_ms=1000)


def test_addresses_name_a_bad_host() -> None:
    for good in ("127.0.0.1:7420", "[::1]:7420", "alpha.local:1", "localhost:0", "a-b_c:9"):
        parse_address(good)
    for bad in ("999.1.1.1:1", "1.2.3:1", "a b:1", "-a:1", "x..y:1"):
        with pytest.raises(ValueError, match="neither an IP address nor a host name"):
            parse_address(bad)


def test_a_missing_project_is_named(home: Path, tmp_path: Path) -> None:
    set_in_config(home, f"project: {tmp_path / 'nowhere'}\n")
    result = bzzz("log", "append", "--home", str(home), "-k", "task.note")
    assert_one_line_error(result, "project: ", "nowhere", "does not exist")
    relative = make_home(tmp_path / "other")
    set_in_config(relative, "project: ../missing\n")
    result = bzzz("log", "append", "--home", str(relative), "-k", "task.note")
    assert_one_line_error(result, "project: ", "missing does not exist")


def test_a_project_that_is_a_file_is_named(home: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    set_in_config(home, f"project: {afile}\n")
    result = bzzz("log", "append", "--home", str(home), "-k", "task.note")
    assert_one_line_error(result, "project: ", "is not a folder")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), ["roles.yaml is not a file"]),
        (lambda p: p.write_text(""), ["roles.yaml is empty"]),
        (lambda p: p.write_text("roles: [\n"), ["roles.yaml: not valid YAML", "line 2"]),
        (lambda p: p.write_bytes(b"roles:\xff\n"), ["roles.yaml", "not UTF-8"]),
        (lambda p: os.symlink(p.parent / "gone.yaml", p), ["roles.yaml is a dangling link"]),
        (lambda p: p.write_text("roles: {admin: {authority: boss}}\n"), ["admin", "authority"]),
    ],
)
def test_a_broken_roles_file_is_named_not_replaced(
    home: Path, tmp_path: Path, make: object, words: list[str]
) -> None:
    project = tmp_path / "project"
    (project / ".ucxl").mkdir(parents=True)
    make(project / ".ucxl" / "roles.yaml")  # type: ignore[operator]
    set_in_config(home, f"project: {project}\n")
    result = bzzz("log", "append", "--home", str(home), "-k", "task.note")
    assert_one_line_error(result, *words)


def test_a_project_without_roles_uses_the_packaged_roles(home: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    set_in_config(home, f"project: {project}\n")
    assert bzzz("log", "append", "--home", str(home), "-k", "task.note").code == 0


def test_a_roles_file_without_the_founders_role_is_named(tmp_path: Path) -> None:
    home = make_home(tmp_path / "node", "--new-cluster", "c", "--listen", "127.0.0.1:0")
    project = tmp_path / "project"
    (project / ".ucxl").mkdir(parents=True)
    (project / ".ucxl" / "roles.yaml").write_text(
        "roles:\n  developer:\n    authority: coordination\n"
    )
    set_in_config(home, f"project: {project}\n")
    result = bzzz("agent", "--home", str(home), "--no-mdns", timeout=30)
    assert_one_line_error(result, "no role named 'admin'", "same roles file")


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"reasoning": {"backend": "ollama"}}, ["reasoning: ", "backend ollama needs a model"]),
        ({"reasoning": {"backend": "replay"}}, ["reasoning: ", "needs recordings"]),
        (
            {"reasoning": {"model": "m", "caps": {"cost": 1.0}}},
            ["reasoning: ", "a cost cap needs prices"],
        ),
        (
            {
                "reasoning": {
                    "backend": "replay",
                    "recordings": "r",
                    "task_types": {"docs": {"backend": "openai"}},
                }
            },
            ["task_types.docs: backend openai needs a model"],
        ),
        ({"reasoning": {"model": "m", "caps": {"calls": 0}}}, ["reasoning.caps.calls: "]),
        ({"reasoning": {"model": "m", "url": "http://u:p@h:1"}}, ["reasoning.url: "]),
        ({"reasoning": {"model": "m", "prompt": "short"}}, ["reasoning.prompt: "]),
        ({"sandbox": {"backend": "docker"}}, ["sandbox.backend: ", "'bwrap'", "'unsandboxed'"]),
        ({"sandbox": {"limits": {"memory_mb": 1}}}, ["sandbox.limits.memory_mb: "]),
        ({"sandbox": {"limit": {}}}, ["sandbox.limit: unknown key"]),
    ],
)
def test_reasoning_and_sandbox_errors_name_the_key(
    section: dict[str, object], words: list[str]
) -> None:
    from bzzz.errors import ConfigError
    from bzzz.home.config import validate_config

    with pytest.raises(ConfigError) as raised:
        validate_config({"name": "n", **section}, "config.yaml")
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_a_bad_reasoning_section_is_one_line_from_the_cli(home: Path) -> None:
    set_in_config(home, "reasoning: {backend: ollama}\n")
    assert_one_line_error(bzzz("status", "--home", str(home)), "reasoning: ", "needs a model")


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"http": {"listen": "nowhere"}}, ["http.listen: ", "'nowhere' is not HOST:PORT"]),
        ({"http": {"listen": "999.1.1.1:80"}}, ["http.listen: ", "neither an IP address"]),
        ({"http": {"ready_lag": -1}}, ["http.ready_lag: "]),
        ({"http": {"token_file": ""}}, ["http.token_file: "]),
        ({"http": {"metrics_auth": "maybe"}}, ["http.metrics_auth: "]),
        ({"http": {"port": 80}}, ["http.port: unknown key"]),
    ],
)
def test_http_errors_name_the_key(section: dict[str, object], words: list[str]) -> None:
    from bzzz.errors import ConfigError
    from bzzz.home.config import validate_config

    with pytest.raises(ConfigError) as raised:
        validate_config({"name": "n", **section}, "config.yaml")
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_http_is_off_by_default_and_a_port_alone_is_loopback() -> None:
    from bzzz.home.config import validate_config

    assert validate_config({"name": "n"}, "c").http.listen is None
    for given in ("9464", ":9464", " 9464 "):
        config = validate_config({"name": "n", "http": {"listen": given}}, "c")
        assert config.http.listen == "127.0.0.1:9464"
    wide = validate_config({"name": "n", "http": {"listen": "0.0.0.0:9464"}}, "c")
    assert wide.http.listen == "0.0.0.0:9464"


def test_http_listen_from_the_environment(home: Path) -> None:
    from bzzz.home.config import load_config

    assert load_config(home, {"BZZZ_HTTP_LISTEN": "9464"}).http.listen == "127.0.0.1:9464"
    assert load_config(home, {"BZZZ_HTTP_LISTEN": ""}).http.listen is None  # off
    result = bzzz("id", "--home", str(home), env={"BZZZ_HTTP_LISTEN": "no:where:x"})
    assert_one_line_error(result, "BZZZ_HTTP_LISTEN: ", "is not HOST:PORT", "http.listen")


def test_ucxi_is_off_by_default_and_its_tls_files_go_together() -> None:
    from bzzz.errors import ConfigError
    from bzzz.home.config import validate_config

    assert validate_config({"name": "n"}, "c").ucxi.listen is None
    assert validate_config({"name": "n", "ucxi": {"listen": "9470"}}, "c").ucxi.listen == (
        "127.0.0.1:9470"
    )
    for section, words in [
        ({"tls_cert": "a.crt"}, ["ucxi", "tls_cert and tls_key go together"]),
        ({"tls_key": "a.key"}, ["ucxi", "tls_cert and tls_key go together"]),
        ({"tls_client_ca": "ca.crt"}, ["ucxi", "mutual TLS is TLS"]),
        ({"listen": "no:where:x"}, ["ucxi.listen", "HOST:PORT"]),
    ]:
        with pytest.raises(ConfigError) as raised:
            validate_config({"name": "n", "ucxi": section}, "config.yaml")
        for word in words:
            assert word in str(raised.value), (word, str(raised.value))
