"""`bzzz keys status|split|reconstruct|release`: role keys, sealed content and the
admin key's shares. Status asks the running agent, or reads the logs (opening this
node's grants with its own key, in memory) when none runs; the ceremonies go through
the agent, which holds the node's keys and, on the admin's node, the admin's duties."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import ask, ask_running
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.home.location import resolve_home
from bzzz.home.node import Node, cluster_id_of, open_node
from bzzz.projections.keyring import Keyring, offline_keyring
from bzzz.projections.leadership import offline_view
from bzzz.projections.membership import read_membership

app = typer.Typer(
    help="Role keys, sealed content and the admin key's shares (Shamir k of n).",
    no_args_is_help=True,
)
CEREMONY_WAIT_S = 30.0


def node_keyring(node: Node) -> tuple[Keyring, dict[bytes, str]]:
    """This node's keyring as its logs give it, without a running agent, and the names
    of the members."""
    founding = cluster_id_of(node.config)
    view = offline_view(node.store, node.roles, founding)
    membership = read_membership(node.store, node.roles, founding)
    leaders = {term: proof.leader for term, proof in view.proof.proven.items()}
    identity = node.identity
    keyring = offline_keyring(
        node.store,
        identity.public_key,
        identity.ssh_private_pem(),
        node.roles,
        leaders,
        view.proof.ends(),
        [*membership.members, *membership.removed],
    )
    names = {m.agent_id: m.name for m in membership.members.values()}
    return keyring, names


def _status(home: Any) -> tuple[bool, dict[str, Any]]:
    answer = ask(home, {"op": "keys_status"}, timeout=10.0)
    if answer is not None and answer.get("ok"):
        return True, answer["keys"]
    with open_node(home) as node:
        keyring, names = node_keyring(node)
        return False, {**keyring.status_json(names), "admin": None}


@app.command("status")
def status(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Which role keys this node holds, per generation; who holds the admin key's shares;
    every ceremony."""
    running, found = _status(resolve_home(home))
    if json_:
        print_json({"running": running, **found})
        return
    if not running:
        out.print("[dim]agent not running: the keys as this node's logs give them[/dim]")
    rows = found["role_keys"]
    if not rows:
        out.print("No role keys yet: the admin grants them (is the admin running?)")
    for row in rows:
        held = "[green]held[/green]" if row["held"] else "[dim]not held[/dim]"
        via = " (via the master key)" if row["source"] == "master" else ""
        out.print(
            f"  {row['role']:<12} generation {row['generation']:<3} {held}{via}  "
            f"[dim]{row['recipient'][:20]}… term {row['term']}, {row['grantees']} grants[/dim]"
        )
    split = found["split"]
    if split is None:
        out.print("Admin key: not split (`bzzz keys split` on the admin's node)")
    else:
        names = ", ".join(
            escape(h["name"] or h["id"][:12]) + (" (this node)" if h["me"] else "")
            for h in split["holders"]
        )
        out.print(
            f"Admin key: split {split['entry'][:12]}, {split['threshold']} of "
            f"{len(split['holders'])} shares: {names}"
        )
    if found["master_in_memory"]:
        out.print("[yellow]The admin key is reconstructed in this agent's memory.[/yellow]")
    for row in found["ceremonies"]:
        who = escape(row["by_name"] or row["by"][:12])
        if row["ceremony"] == "split":
            out.print(f"  {iso_ms(row['ts'])} split {row['entry'][:12]} by {who}")
        else:
            out.print(
                f"  {iso_ms(row['ts'])} reconstruct {row['entry'][:12]} by {who}: "
                f"{row['status']} [dim]({escape(row['reason'])})[/dim]"
            )


@app.command("split")
def split(
    holders: Annotated[
        str, typer.Option("--holders", help="Who holds a share: ids or names, comma-separated.")
    ],
    threshold: Annotated[
        int, typer.Option("--threshold", help="How many shares rebuild the key.")
    ] = 3,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """On the admin's node: make a new admin key and split it (SLIP-39), each share
    sealed to its holder. The key itself is never written anywhere."""
    names = [h.strip() for h in holders.split(",") if h.strip()]
    request = {"op": "keys_split", "holders": names, "threshold": threshold}
    answer = ask_running(resolve_home(home), request, timeout=CEREMONY_WAIT_S)
    if json_:
        print_json({k: v for k, v in answer.items() if k != "ok"})
        return
    out.print(
        f"Admin key split {answer['split'][:12]}: {answer['threshold']} of "
        f"{len(answer['holders'])} shares, each sealed to its holder"
    )
    out.print(f"  master recipient {answer['recipient']}")


@app.command("reconstruct")
def reconstruct(
    reason: Annotated[str, typer.Option("--reason", help="Why the admin key is needed.")],
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, max=600, help="Wait this long for the holders' consents."),
    ] = 0.0,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Ask the holders for their shares; once enough consent (`bzzz keys release`), this
    node's agent rebuilds the admin key in memory and records who, what and why."""
    request = {"op": "keys_reconstruct", "reason": reason, "wait": wait}
    answer = ask_running(resolve_home(home), request, timeout=wait + CEREMONY_WAIT_S)
    if json_:
        print_json({k: v for k, v in answer.items() if k != "ok"})
    else:
        out.print(
            f"Reconstruction requested: {answer['request']}\n"
            f"  {answer['threshold']} of {len(answer['holders'])} holders must consent, each "
            f"with `bzzz keys release {answer['request'][:16]}`"
        )
        outcome = answer.get("outcome")
        if outcome is not None and outcome["ok"]:
            out.print(
                f"Reconstructed in memory with {len(outcome['used'])} shares; master recipient "
                f"{outcome['recipient']}; {outcome['role_keys']} role keys open here"
            )
        elif outcome is not None:
            out.print(f"[red]Refused:[/red] {escape(str(outcome['problem']))}")
        elif wait:
            out.print("Not enough consents yet (`bzzz keys status`)")
    outcome = answer.get("outcome")
    if wait and (outcome is None or not outcome["ok"]):
        raise typer.Exit(1)


@app.command("release")
def release(
    request: Annotated[str, typer.Argument(help="The request's entry id (or 8+ of its digits).")],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """As a holder: consent to a reconstruction by releasing this node's share, sealed to
    the requester."""
    answer = ask_running(
        resolve_home(home), {"op": "keys_release", "request": request}, timeout=CEREMONY_WAIT_S
    )
    if json_:
        print_json({k: v for k, v in answer.items() if k != "ok"})
    elif answer.get("already"):
        out.print(f"This node already released its share for {answer['request'][:12]}")
    else:
        out.print(
            f"Released this node's share for {answer['request'][:12]}, sealed to its requester"
        )
