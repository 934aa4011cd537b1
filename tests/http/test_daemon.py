"""Health, metrics and the dashboard of real `bzzz agent` processes on 127.0.0.1: one
node's `http.listen` from config.yaml, the other's from BZZZ_HTTP_LISTEN; /readyz turning
200 once joined; /metrics parsed by prometheus-client's parser; the dashboard's data
behind the token; the page in headless chromium showing the agents, the leader, a task
and an HMMM thread (hostile text shown as text), updating live, with a screenshot."""

from __future__ import annotations

import http.client
import json
import stat
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.http.chromium import Browser, artifacts_dir, chromium_path
from tests.support.agents import (
    Agent,
    claim,
    found,
    free_port,
    join,
    proven_leader,
    stop_all,
    wait_for,
)
from tests.support.cli import bzzz

pytestmark = pytest.mark.slow

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HOSTILE_TITLE = '<img src=x id="pwned-title"> Fix the <b>greeting</b>'
HOSTILE_TEXT = '<script id="pwned-text">window.pwned=1</script> is "hello" right?'


def configure(node: Agent, **sections: dict[str, Any]) -> None:
    path = node.home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data))


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def metrics(url: str) -> dict[str, Any]:
    status, _, body = get(url + "/metrics")
    assert status == 200, body
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(family: Any, **labels: str) -> float:
    found_ = [s.value for s in family.samples if s.labels == labels]
    assert len(found_) == 1, (family.name, labels, family.samples)
    return float(found_[0])


def ready(url: str, seen: list[tuple[int, list[str]]]) -> bool:
    status, _, body = get(url + "/readyz")
    reasons = json.loads(body)["reasons"]
    if not seen or seen[-1] != (status, reasons):
        seen.append((status, reasons))
    return status == 200


@pytest.fixture
def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Agent, Agent, int]]:
    """alpha (http.listen in its config.yaml) and bravo (BZZZ_HTTP_LISTEN=PORT), running;
    bravo's HTTP port."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    tasks = {"poll_s": 1.0, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    a = found(tmp_path, "alpha")
    configure(a, tasks=tasks, http={"listen": f"127.0.0.1:{free_port()}"})
    agents = [a]
    try:
        a.start()
        b = join(tmp_path, "bravo", a)
        b.peers = [a.address]
        configure(b, tasks=tasks)
        agents.append(b)
        port = free_port()
        monkeypatch.setenv("BZZZ_HTTP_LISTEN", str(port))  # a port alone: on 127.0.0.1
        b.start()
        monkeypatch.delenv("BZZZ_HTTP_LISTEN")
        yield a, b, port
    finally:
        stop_all(agents)


def url_of(agent: Agent) -> str:
    result = bzzz("status", "--home", str(agent.home), "--json")
    urls = json.loads(result.out)["http"]
    assert urls is not None, result.out
    return str(urls["readyz"]).removesuffix("/readyz")


def test_health_metrics_and_the_dashboard_of_running_agents(
    mesh: tuple[Agent, Agent, int],
) -> None:
    a, b, port_b = mesh
    url_a = url_of(a)
    shown = bzzz("status", "--home", str(a.home)).out
    assert f"{url_a}/metrics" in shown and "#token=TOKEN" in shown and "http.token" in shown
    url_b = f"http://127.0.0.1:{port_b}"

    # /readyz: 200 once joined, connected, caught up and following a proven leader.
    assert get(url_b + "/healthz")[:3:2] == (200, b"ok\n")
    seen: list[tuple[int, list[str]]] = []
    wait_for(lambda: ready(url_b, seen), timeout=30, what="bravo's /readyz to answer 200")
    assert all(reasons for status, reasons in seen if status == 503), seen
    wait_for(lambda: ready(url_a, []), timeout=30, what="alpha's /readyz to answer 200")
    leader = wait_for(lambda: proven_leader([a, b]), timeout=30, what="a proven leader")
    leader_name = "alpha" if leader == a.agent_id else "bravo"

    # A task (its title hostile HTML), claimed by bravo; a thread on it.
    added = bzzz("task", "add", "--home", str(a.home), "--title", HOSTILE_TITLE, "--json")
    assert added.code == 0, added.err
    task = json.loads(added.out)["id"]

    def on_board() -> bool:
        bzzz("task", "sync", "--home", str(b.home))
        status, _, body = get(url_b + "/api/v1/state", Authorization=f"Bearer {token}")
        return status == 200 and any(t["id"] == task for t in json.loads(body)["tasks"])

    token_file = b.home / "http.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    wait_for(on_board, timeout=30, what="the task on bravo's board")
    granted = claim(b, task)
    assert granted["status"] == "granted", granted
    said = bzzz(
        "hmmm",
        "say",
        task,
        "--type",
        "concern",
        "--text",
        HOSTILE_TEXT,
        "--home",
        str(b.home),
        "--json",
    )
    assert said.code == 0, said.err
    first = json.loads(said.out)["entry"]

    # /metrics, parsed by prometheus-client.
    def counted() -> dict[str, Any] | None:
        families = metrics(url_b)
        threads = value(families["bzzz_hmmm_threads"], state="discussing")
        return families if value(families["bzzz_claim_grants"]) == 1 and threads == 1 else None

    families = wait_for(counted, timeout=20, what="the grant and the thread in bravo's metrics")
    assert value(families["bzzz_tasks"], state="claimed") == 1
    assert value(families["bzzz_ready"]) == 1
    assert value(families["bzzz_cluster_members"]) == 2
    assert value(families["bzzz_peers_connected"]) == 1
    assert value(families["bzzz_election_term"]) >= 1
    assert value(families["bzzz_election_leader"]) == 1
    assert value(families["bzzz_election_is_leader"]) == int(leader_name == "bravo")
    assert value(families["bzzz_election_leader_changes"]) >= 1
    assert value(families["bzzz_entries_appended"]) == b.heads()[b.agent_id]
    assert value(families["bzzz_entries_ingested"]) >= 3  # alpha's founding and admission
    lag = families["bzzz_replication_lag_entries"]
    assert {(s.labels["peer_name"], s.labels["side"]) for s in lag.samples} == {
        ("alpha", "we_lack"),
        ("alpha", "they_lack"),
    }
    assert value(families["bzzz_audit_findings"], check="split-brain") == 0
    assert value(families["bzzz_alerts"], kind="fork") == 0
    assert families["bzzz_node_info"].samples[0].labels["name"] == "bravo"

    # The scrape's cost on a running daemon.
    connection = http.client.HTTPConnection("127.0.0.1", port_b, timeout=10)
    times = []
    for _ in range(50):
        began = time.perf_counter()
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        answer.read()
        times.append(time.perf_counter() - began)
        assert answer.status == 200
    connection.close()
    p50, worst = statistics.median(times) * 1000, max(times) * 1000
    print(f"\nbravo /metrics scrape (50 on one connection): p50 {p50:.2f} ms, max {worst:.2f} ms")

    # The dashboard's data needs the token; health does not.
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": token},
    ):
        status, answer_headers, body = get(url_b + "/api/v1/state", **headers)
        assert status == 401 and b"Authorization: Bearer TOKEN" in body, (headers, body)
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = get(url_b + "/dashboard/events")
    assert status == 401
    status, headers_, body = get(url_b + "/dashboard")
    assert status == 200 and b"<script" in body and token.encode() not in body
    assert "script-src 'self'" in headers_["Content-Security-Policy"]
    status, _, body = get(url_b + "/api/v1/state", Authorization=f"Bearer {token}")
    state = json.loads(body)
    assert [x["name"] for x in state["agents"]] == ["alpha", "bravo"]
    assert state["election"]["leader_name"] == leader_name
    assert any(t["title"] == HOSTILE_TITLE for t in state["tasks"])

    # The page, in chromium.
    chromium_path()
    browser = Browser()
    try:
        browser.open(f"{url_b}/dashboard#token={token}")
        browser.wait_for(
            "document.querySelectorAll('#agents tbody tr[data-agent]').length === 2"
            " && document.querySelectorAll('#threads tbody tr[data-thread]').length === 1"
        )
        page = browser.evaluate(
            """(() => {
              const rows = (id) => [...document.querySelectorAll('#' + id + ' tbody tr')]
                .map((tr) => [...tr.cells].map((td) => td.textContent));
              return {
                agents: rows('agents'), tasks: rows('tasks'), threads: rows('threads'),
                heads: rows('heads'), leader: document.querySelector('[data-leader]').textContent,
                hash: location.hash, status: document.getElementById('status').dataset.state,
                injected: document.querySelectorAll(
                  '#pwned-title, #pwned-text, main img, main script, main b').length,
                pwned: window.pwned === 1,
              };
            })()"""
        )
        assert page["status"] == "live"
        assert page["hash"] == ""  # the token left the address bar
        assert [row[0] for row in page["agents"]] == ["alpha", "bravo"]
        bravo = next(row for row in page["agents"] if row[0] == "bravo")
        assert task in bravo[5]  # the task bravo holds
        assert page["leader"] == leader_name
        row = next(r for r in page["tasks"] if r[0] == task)
        assert row[1] == HOSTILE_TITLE and row[2] == "claimed" and row[3] == "bravo"
        thread = page["threads"][0]
        assert thread[0] == task and thread[1] == "discussing"
        assert thread[5] == f"bravo (hmmm.msg): {HOSTILE_TEXT}"
        assert page["injected"] == 0 and page["pwned"] is False  # shown as text, never run
        assert {r[0] for r in page["heads"]} == {"alpha", "bravo"}

        # Live: a new message on alpha reaches the page open on bravo, no reload.
        reply = ["--type", "answer", "--parent", first, "--text", "yes", "--home", str(a.home)]
        wait_for(  # once alpha holds the message it answers
            lambda: bzzz("hmmm", "say", task, *reply).code == 0, timeout=20, what="the reply"
        )
        browser.wait_for(
            "document.querySelector('#threads tbody tr[data-thread]').cells[5].textContent"
            " === 'alpha (hmmm.msg): yes'"
        )
        shot = browser.screenshot(artifacts_dir() / "dashboard.png")
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")

        # A wrong token: the page says so and asks for one.
        browser.open("about:blank")  # else only the fragment would change, not the page
        browser.open(f"{url_b}/dashboard#token=not-the-token-at-all")
        browser.wait_for("!document.getElementById('token-form').hidden")
        assert browser.evaluate("document.getElementById('status').dataset.state") == "refused"
        assert browser.evaluate("document.getElementById('main').hidden") is True
    finally:
        browser.close()
