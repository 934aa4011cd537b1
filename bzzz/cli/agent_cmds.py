"""`bzzz agent` (the daemon) and `bzzz status`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import ask
from bzzz.agent.logs import setup_logging
from bzzz.cli.options import HomeOption, JsonOption, check_address
from bzzz.cli.render import NO_CLUSTER, err, iso_ms, out, print_json, shown
from bzzz.domain.addresses import format_address, parse_address
from bzzz.errors import BzzzError
from bzzz.home.keys import load_identity
from bzzz.home.location import private_file_problems, resolve_home, sqlite_files
from bzzz.home.node import open_config, open_home_store, store_url_of


def agent(
    home: HomeOption = None,
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT to accept peers on (default: mesh.listen).")
    ] = None,
    peer: Annotated[
        list[str] | None, typer.Option("--peer", help="HOST:PORT of a peer to dial; repeatable.")
    ] = None,
    no_mdns: Annotated[
        bool, typer.Option("--no-mdns", help="Neither announce nor browse.")
    ] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines.")] = False,
) -> None:
    """Run this node in the mesh until SIGINT or SIGTERM."""
    if listen is not None:  # checked before anything starts
        check_address("--listen", listen)
    for address in peer or []:
        check_address("--peer", address)
    import uvloop  # libuv's loop: a daemon's wake-ups and socket callbacks cost less

    from bzzz.agent.daemon import run_agent  # asyncssh and zeroconf: only the daemon pays

    where = resolve_home(home)
    config = open_config(where)
    setup_logging(config.log.level, log_json)
    uvloop.run(run_agent(where, listen=listen, peers=peer or [], mdns=False if no_mdns else None))


def status(home: HomeOption = None, json_: JsonOption = False) -> None:
    """This node and its peers, from the running agent (or the store when it is not running)."""
    where = resolve_home(home)
    answer = ask(where, {"op": "status"})
    if answer is not None and answer.get("ok"):
        data: dict[str, Any] = {"running": True, **answer["status"]}
    else:
        config = open_config(where)
        with open_home_store(where) as store:
            heads = {a.hex(): h.seq for a, h in store.heads().items()}
            entries = store.count()
        data = {
            "running": False,
            "agent_id": load_identity(where).public_key.hex(),
            "name": config.name,
            "role": config.role,
            "cluster": config.mesh.cluster,
            "cluster_id": config.mesh.cluster_id,
            "listen": None,
            "store": {"url": store.url.display(), "entries": entries, "logs": len(heads)},
            "heads": heads,
            "peers": [],
        }
    if data["running"]:
        data["http"] = _http_urls(where, data.pop("http_listen", None))
        data.setdefault("ucxi", None)
    _warn_not_private(where)
    if json_:
        print_json(data)
        return
    _render(data)


def _http_urls(home: Path, bound: str | None) -> dict[str, str] | None:
    """Where the running agent serves health, metrics and the dashboard: where it says
    it listens (`bound`), else its config's `http.listen`; None when it does not."""
    try:
        config = open_config(home)
    except BzzzError:
        return None
    listen = bound or config.http.listen
    if listen is None:
        return None
    host, port = parse_address(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    base = f"http://{format_address(host, port)}"
    return {
        "healthz": f"{base}/healthz",
        "readyz": f"{base}/readyz",
        "metrics": f"{base}/metrics",
        "dashboard": f"{base}/dashboard",
        "token_file": str(home / Path(config.http.token_file).expanduser()),
    }


def _store_files(home: Path) -> list[Path]:
    """The SQLite store's files, when the home's store is SQLite."""
    try:
        url = store_url_of(home, open_config(home))
    except BzzzError:
        return []  # the status itself says what is wrong with the config
    return sqlite_files(Path(url.url.database)) if url.is_sqlite and url.url.database else []


def _warn_not_private(home: Path) -> None:
    """One warning line on stderr per file or folder of the home that others may read."""
    for problem in private_file_problems(home, _store_files(home)):
        err.print(f"[yellow]warning:[/yellow] {escape(problem)}")


def _render(data: dict[str, Any]) -> None:
    state = "[green]running[/green]" if data["running"] else "[yellow]not running[/yellow]"
    out.print(f"[bold]{data['name']}[/bold] {data['agent_id']}  {state}")
    authority = f" ({data['authority']})" if data.get("authority") else ""
    cluster = f"cluster {data['cluster']}" if data.get("cluster") else NO_CLUSTER
    if data.get("cluster") and data.get("cluster_id"):
        cluster += f" ({str(data['cluster_id'])[:12]})"
    if data["running"]:
        listen = f"listening on {shown(data.get('listen'), 'no address yet')}"
    else:
        listen = "not listening (the agent is not running)"
    out.print(f"  role {data['role']}{authority}  {cluster}  {listen}")
    store = data["store"]
    out.print(f"  store {store['url']}: {store['entries']} entries in {store['logs']} logs")
    execution = data.get("execution")
    if execution:
        sandbox = execution["sandbox"]
        if sandbox == "unsandboxed":
            sandbox = "[red]UNSANDBOXED[/red] (commands run with this node's rights)"
        working = ", ".join(execution["running"]) or "nothing now"
        done = len(execution["finished"])
        out.print(f"  execution: sandbox {sandbox}; working on {working}; {done} runs ended")
    elif data["running"]:
        out.print("  execution: off (no reasoning in config.yaml: people work the tasks)")
    now = time.time() * 1000
    for peer in data["peers"]:
        ident = (peer.get("agent_id") or "?")[:12]
        if peer["connected"]:
            heard = (now - peer["last_heard"]) / 1000
            out.print(
                f"  [green]●[/green] {peer.get('name') or '?'} {ident} {peer['address']} "
                f"heard {heard:.1f}s ago, we lack {peer['we_lack']}, they lack {peer['they_lack']}"
            )
        else:
            error = peer.get("last_error") or "connecting"
            out.print(f"  [red]○[/red] {ident} {peer['address']} down: {error}")
    if data["running"] and not data["peers"]:
        out.print("  no peers yet")
    urls = data.get("http")
    if urls:
        out.print(
            f"  http: {escape(urls['readyz'])}, {escape(urls['metrics'])}; dashboard "
            f"{escape(urls['dashboard'])}#token=TOKEN (the token is in "
            f"{escape(urls['token_file'])})"
        )
    ucxi = data.get("ucxi")
    if ucxi:
        how = f"the token is in {ucxi['token_file']}" if ucxi["token_file"] else "mutual TLS"
        out.print(f"  ucxi: {escape(ucxi['url'])} ({escape(how)})")
    if not data["running"]:
        out.print(f"  (start the agent with `bzzz agent`; checked at {iso_ms(int(now))})")
