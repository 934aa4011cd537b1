"""UCXI against a real daemon: its token, the typed client (sync and async) and the CLI
agreeing, bad requests refused with a message, and the committed OpenAPI document
being the one the server serves."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bzzz.client import AsyncUcxiClient, UcxiClient
from bzzz.errors import UcxiError
from bzzz.http.ucxi import openapi_document
from tests.support.agents import Agent, found, free_port, invite_token, join, stop_all, wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "ucxi-openapi.json"
GUARDED = ["resolve?address=x", "history?address=x", "search?pattern=x", "status", "tasks"]


def bzzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *args], capture_output=True, text=True, timeout=60
    )


class Node:
    def __init__(self, agent: Agent, url: str) -> None:
        self.agent = agent
        self.url = url
        self.token = (agent.home / "ucxi.token").read_text().strip()
        self.id = agent.agent_id

    def client(self) -> UcxiClient:
        return UcxiClient(self.url, token_file=self.agent.home / "ucxi.token")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("ucxi")
    port = free_port()
    a = found(root)
    a.env = {"BZZZ_UCXI_LISTEN": f"127.0.0.1:{port}"}
    a.start()
    b = join(root, "n1", a, invite_token(a, role="reviewer"))
    b.start()
    try:
        yield Node(a, f"http://127.0.0.1:{port}")
    finally:
        stop_all([a, b])


def decision_at(node: Node, path: str = "decisions/api.md", task: str = "api") -> str:
    return f"ucxl://{node.id[:16]}:admin@test:{task}/~latest/{path}"


def test_a_decision_is_found_by_its_address_through_the_cli_and_ucxi(node: Node) -> None:
    address = decision_at(node)
    cli = bzzz("decide", "--home", str(node.agent.home), "--address", address, "--text", "v1")
    assert cli.returncode == 0, cli.stderr
    with node.client() as ucxi:
        version = wait_for(lambda: _quiet(ucxi.resolve, address), 10, "the decision on UCXI")
        shown = json.loads(
            bzzz("ucxl", "get", address, "--home", str(node.agent.home), "--json").stdout
        )
        assert version.text == shown["text"] == "v1"
        assert version.hash == shown["hash"] and version.address == shown["address"]
        assert version.author == node.id and version.author_name == "n0"
        assert version.kind == "decision.made"

        written = ucxi.put(address, "v2", decision=True)
        assert written.version is not None and written.version.version == 2
        history = ucxi.history(address)
        assert [v.text for v in history.versions] == ["v1", "v2"] and history.more == 0
        assert ucxi.history(address, limit=1).more == 1
        first = address.replace("~latest", "~v1")
        assert ucxi.resolve(first).text == "v1"
        found_ = ucxi.search("ucxl://*:*@test:api/~latest")
        assert [v.latest for v in found_.found] == [address.replace(node.id[:16], node.id)]


def _quiet(call: object, *args: str) -> object:
    try:
        return call(*args)  # type: ignore[operator]
    except UcxiError:
        return None


def test_every_path_but_the_document_needs_the_token(node: Node) -> None:
    with httpx.Client(base_url=node.url, trust_env=False) as http:
        for path in GUARDED:
            for headers in (
                {},
                {"Authorization": "Bearer not-the-token"},
                {"Authorization": node.token},
            ):
                answer = http.get(f"/ucxi/v1/{path}", headers=headers)
                assert answer.status_code == 401, (path, headers, answer.text)
                assert "ucxi.token_file" in answer.json()["error"]
                assert answer.headers["www-authenticate"] == "Bearer"
        posted = http.post("/ucxi/v1/context", json={"address": "x", "text": "y"})
        assert posted.status_code == 401
        assert http.get("/ucxi/v1/openapi.json").json()["info"]["title"] == "BZZZ UCXI"
    wrong = UcxiClient(node.url, token="wrong-token-wrong-token-wrong")
    with wrong as ucxi, pytest.raises(UcxiError) as refused:
        ucxi.status()
    assert refused.value.status == 401


def test_bad_requests_get_a_message_and_write_nothing(node: Node) -> None:
    mine = decision_at(node, "notes/x.md", task="bad")
    theirs = mine.replace(node.id[:16], "ab" * 8)
    cases = [
        (lambda u: u.resolve("ucxl://nope"), 400, "position 7: expected an agent id"),
        (lambda u: u.resolve(decision_at(node, "nothing/here.md")), 404, "nothing at"),
        (lambda u: u.history("ucxl://*:*@test:*/~latest"), 400, "search"),
        (lambda u: u.put(theirs, "x"), 400, "your own context"),
        (lambda u: u.put(mine.replace(":admin@", ":developer@"), "x"), 400, "your role is admin"),
        (lambda u: u.put(mine.replace("~latest", "~v1"), "x"), 400, "~latest"),
        (lambda u: u.put(mine, "x", seal_for="no_such_role"), 400, "no_such_role"),
        (lambda u: u.search("ucxl://*:*@test:*/~latest", limit=0), 400, "limit"),
    ]
    with node.client() as ucxi:
        before = ucxi.status()["status"]["heads"][node.id]
        for call, status, words in cases:
            with pytest.raises(UcxiError) as refused:
                call(ucxi)
            assert refused.value.status == status, (words, refused.value)
            assert words in str(refused.value), (words, refused.value)
        assert ucxi.status()["status"]["heads"][node.id] == before
    with httpx.Client(base_url=node.url, trust_env=False) as http:
        auth = {"Authorization": f"Bearer {node.token}"}
        huge = http.post(
            "/ucxi/v1/context",
            content=b'{"address": "' + b"x" * 1_100_000 + b'"}',
            headers={**auth, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413 and "over" in huge.json()["error"]
        extra = http.post(
            "/ucxi/v1/context", json={"address": mine, "text": "x", "as": 1}, headers=auth
        )
        assert extra.status_code == 400 and "as" in extra.json()["error"]
        # The longest text by characters, astral ones escaped as json.dumps writes them:
        # within the body limit (no 413), and refused for its UTF-8 size, in one line.
        wide = http.post(
            "/ucxi/v1/context",
            content=json.dumps({"address": mine, "text": "\U0001f600" * 60_000}),
            headers={**auth, "Content-Type": "application/json"},
        )
        assert wide.status_code == 400 and "240000 bytes of UTF-8" in wide.json()["error"]
        lone = http.post(
            "/ucxi/v1/context",
            content=json.dumps({"address": mine, "text": "a\ud800"}),  # a lone surrogate
            headers={**auth, "Content-Type": "application/json"},
        )
        assert lone.status_code == 400 and "unicode string" in lone.json()["error"]


def test_the_async_client_reads_the_board_and_threads(node: Node) -> None:
    async def read() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        async with AsyncUcxiClient(node.url, token=node.token) as ucxi:
            return await asyncio.gather(ucxi.status(), ucxi.tasks(), ucxi.threads())

    status, tasks, threads = asyncio.run(read())
    assert status["status"]["name"] == "n0"  # type: ignore[index]
    assert tasks["tasks"] == [] and threads["threads"] == []


def test_an_unreachable_server_is_an_error_with_status_zero() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    nowhere = UcxiClient(f"http://127.0.0.1:{port}", token="t" * 32, timeout=2)
    with nowhere as ucxi, pytest.raises(UcxiError) as failed:
        ucxi.status()
    assert failed.value.status == 0 and "cannot reach UCXI" in str(failed.value)


def test_the_committed_document_is_the_served_one(node: Node) -> None:
    served = httpx.get(f"{node.url}/ucxi/v1/openapi.json", trust_env=False).json()
    committed = json.loads(DOCUMENT.read_text())
    assert DOCUMENT.read_text() == openapi_document(), (
        "docs/ucxi-openapi.json is stale: `python -m bzzz.http.ucxi > docs/ucxi-openapi.json`"
    )
    assert served == committed


def test_a_port_taken_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        a = found(tmp_path)
        env = {**os.environ, "BZZZ_UCXI_LISTEN": f"127.0.0.1:{taken.getsockname()[1]}"}
        run = subprocess.run(
            [sys.executable, "-m", "bzzz", "agent", "--home", str(a.home), "--no-mdns"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert run.returncode != 0
    assert "ucxi.listen: cannot listen on" in run.stderr and "Traceback" not in run.stderr


def test_the_readme_examples_run_against_a_daemon(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Shared context and UCXI") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    address = decision_at(node, "decisions/readme.md", task="readme")
    with node.client() as ucxi:
        ucxi.put(address, "from the README test", decision=True)
    code = (
        code.replace("http://127.0.0.1:9470", node.url)
        .replace("/path/to/home/ucxi.token", str(node.agent.home / "ucxi.token"))
        .replace('token="..."', f'token="{node.token}"')
        .replace("ucxl://4f2a:architect@demo:api/~latest/decisions/auth.md", address)
    )
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    printed = capsys.readouterr().out
    assert "n0 1 from the README test" in printed and "~v1/decisions/readme.md" in printed
    assert asyncio.run(scope["tasks"]()) == []  # type: ignore[operator]


def test_status_says_where_ucxi_is_and_where_its_token_is(node: Node) -> None:
    shown = bzzz("status", "--home", str(node.agent.home), "--json")
    assert shown.returncode == 0, shown.stderr
    ucxi = json.loads(shown.stdout)["ucxi"]
    assert ucxi == {"url": f"{node.url}/ucxi/v1", "token_file": str(node.agent.home / "ucxi.token")}
    text = bzzz("status", "--home", str(node.agent.home)).stdout
    assert f"ucxi: {node.url}/ucxi/v1 (the token is in" in text


def test_a_sealed_version_reads_where_the_keys_allow_and_is_counted_elsewhere(
    node: Node, tmp_path: Path
) -> None:
    address = decision_at(node, "notes/sealed.md", task="sealed")
    with node.client() as ucxi:

        def sealed_written() -> object:
            try:  # the admin grants itself the role keys soon after it is elected
                return ucxi.put(address, "the merger closes Friday", seal_for="admin")
            except UcxiError as error:
                assert error.status == 400, error
                return None

        written = wait_for(sealed_written, 30, "a version sealed for admin")
        assert written.version is not None and written.version.sealed_for == "admin"
        assert ucxi.resolve(address).text == "the merger closes Friday"
    reviewer = node.agent.home.parent / "n1"
    pattern = "ucxl://*:*@test:sealed/~latest"

    def counted() -> dict[str, object] | None:
        run = bzzz("ucxl", "search", pattern, "--home", str(reviewer), "--json")
        shown = json.loads(run.stdout)
        return shown if shown["hidden"] else None

    shown = wait_for(counted, 30, "the sealed version counted on the reviewer's node")
    assert shown["found"] == [] and shown["hidden"] == [{"sealed_for": "admin", "versions": 1}]
    assert "merger" not in json.dumps(shown)
    text = bzzz("ucxl", "search", pattern, "--home", str(reviewer)).stdout
    assert "1 version(s) sealed for admin may match and are not shown" in text
