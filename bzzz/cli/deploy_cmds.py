"""`bzzz deploy` and `bzzz setup`: install BZZZ on machines over SSH and join them to
this node's cluster (`bzzz.runtime.deploy`).

`deploy` takes USER@HOST[:PORT] targets (or `--retry`, which continues the deployments
recorded in the home's deploy.json from the step that failed); `setup` is the guided
version: it finds machines (a hosts file, mDNS), asks which to deploy to with which
role, deploys them with live progress, and offers to retry the ones that failed.
Logins use a key (the SSH agent's, ~/.ssh's, or --identity), never a password; host
keys are checked against known_hosts.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.prompt import Confirm, Prompt
from rich.table import Table

from bzzz.agent.control import ask, notify_agent
from bzzz.cli.options import HomeOption, JsonOption, check_address
from bzzz.cli.render import err, out, print_json
from bzzz.domain import deploy as rules
from bzzz.domain.deploy import HostPlan, HostRecord, parse_target
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import open_config, open_node

RoleOption = Annotated[str, typer.Option("--role", help="The new nodes' role (invited as such).")]
IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        help="The private key to log in with (default: your SSH agent's, then ~/.ssh's).",
    ),
]
KnownHostsOption = Annotated[
    Path | None,
    typer.Option("--known-hosts", help="The known_hosts file (default: ~/.ssh/known_hosts)."),
]
AcceptNewOption = Annotated[
    bool,
    typer.Option(
        "--accept-new",
        help="Trust a host seen for the first time without asking (a changed key is "
        "still refused).",
    ),
]
PrefixOption = Annotated[
    str,
    typer.Option(
        "--prefix", help="Where BZZZ goes on the hosts (the virtualenv, wheels, the home)."
    ),
]
RemoteHomeOption = Annotated[
    str | None,
    typer.Option("--remote-home", help="The node home on the hosts (default: PREFIX/home)."),
]
ListenOption = Annotated[str, typer.Option("--listen", help="HOST:PORT the new agents listen on.")]
SystemdOption = Annotated[
    str,
    typer.Option(
        "--systemd",
        help="auto: a systemd service where systemd runs, else the unit is written and the "
        "agent started detached (said in the report); yes: systemd or fail; no: no unit, "
        "started detached.",
    ),
]
UnitDirOption = Annotated[
    str | None,
    typer.Option(
        "--unit-dir",
        help="Write the unit to this folder on the hosts instead of systemd's (tests, images).",
        hidden=True,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="HOST:PORT at which the new nodes reach this node's agent (default: where it "
        "listens).",
    ),
]
WheelOption = Annotated[
    Path | None,
    typer.Option("--wheel", help="Install this bzzz wheel (default: built from this checkout)."),
]


def deploy(
    targets: Annotated[
        list[str] | None, typer.Argument(help="USER@HOST[:PORT] of each machine.")
    ] = None,
    home: HomeOption = None,
    role: RoleOption = "developer",
    identity: IdentityOption = None,
    known_hosts: KnownHostsOption = None,
    accept_new: AcceptNewOption = False,
    retry: Annotated[
        bool,
        typer.Option(
            "--retry",
            help="Continue the recorded deployments of TARGETS (default: every unfinished "
            "one) from the step that failed.",
        ),
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="The node's name (one target only).")
    ] = None,
    prefix: PrefixOption = rules.DEFAULT_PREFIX,
    remote_home: RemoteHomeOption = None,
    listen: ListenOption = rules.DEFAULT_LISTEN,
    systemd: SystemdOption = "auto",
    unit_dir: UnitDirOption = None,
    address: AddressOption = None,
    wheel: WheelOption = None,
    json_: JsonOption = False,
) -> None:
    """Install BZZZ on machines over SSH and join them to this node's cluster: check the
    host, stop a running agent, install, make the node home, invite and join, start the
    service, verify it replicates. Safe to run twice; --retry resumes a failed one."""
    where = resolve_home(home)
    open_config(where)  # a node home (ConfigError says what to do), before anything else
    wanted = [str(parse_target(t)) for t in targets or []]
    if not retry and not wanted:
        raise UsageError("name at least one USER@HOST[:PORT], or continue with --retry")
    if name is not None and len(wanted) != 1:
        raise UsageError("--name names one node: give exactly one target with it")
    if address is not None:
        check_address("--address", address)
    plans = [
        rules.check_plan(
            HostPlan(
                target=parse_target(t),
                role=role,
                name=name,
                prefix=prefix,
                home=remote_home,
                listen=listen,
                systemd=_systemd(systemd),
                unit_dir=unit_dir,
            )
        )
        for t in wanted
    ]
    from bzzz.runtime.deploy import plan_records

    records = plan_records(where, plans, retry, wanted)
    if not records:
        out.print("nothing to retry: every recorded deployment finished")
        return
    ended = _deploy(where, records, identity, known_hosts, accept_new, address, wheel, json_)
    _finish(ended, json_)


def _systemd(value: str) -> rules.SystemdMode:
    if value == "auto":
        return "auto"
    if value == "yes":
        return "yes"
    if value == "no":
        return "no"
    raise UsageError(f"--systemd {value!r}: one of auto, yes, no")


def _reach(home: Path, address: str | None) -> str:
    """Where the new nodes reach this node's agent (it must run: they join through it)."""
    answer = ask(home, {"op": "status"})
    if answer is None or not answer.get("ok"):
        raise UsageError(
            f"no agent runs on {home}: start it first (bzzz agent --home {home}); the new "
            "nodes join the cluster through it"
        )
    if address is not None:
        return address
    listen = answer["status"].get("listen")
    if not isinstance(listen, str):
        raise UsageError("the agent does not say where it listens: give --address HOST:PORT")
    return listen


def _ask_fingerprint(host: str, algorithm: str, fingerprint: str) -> bool:
    err.print(
        f"The authenticity of host [bold]{escape(host)}[/bold] can't be established.\n"
        f"{escape(algorithm)} key fingerprint is {escape(fingerprint)}."
    )
    return Confirm.ask("Trust it and continue?", default=False, console=err)


def _deploy(
    where: Path,
    records: list[HostRecord],
    identity: Path | None,
    known_hosts: Path | None,
    accept_new: bool,
    address: str | None,
    wheel: Path | None,
    json_: bool,
) -> list[HostRecord]:
    from bzzz.deploy.remote import HostKeyPolicy, default_known_hosts
    from bzzz.runtime.deploy import Access, deploy_hosts

    reach = _reach(where, address)
    policy = HostKeyPolicy(
        known_hosts or default_known_hosts(),
        accept_new,
        _ask_fingerprint if sys.stdin.isatty() else None,
    )
    screen = err if json_ else out
    width = max(len(r.key) for r in records)

    def report(event: Any) -> None:
        title = rules.TITLES[event.step]
        host = escape(event.host.ljust(width))
        if event.state == "started":
            screen.print(f"{host}  {title} ...")
        elif event.state == "done":
            screen.print(
                f"{host}  [green]done[/green] {title} ({event.seconds:.1f} s): {escape(event.said)}"
            )
        else:
            screen.print(
                f"{host}  [red]FAILED[/red] {title} ({event.seconds:.1f} s): {escape(event.said)}"
            )

    with open_node(where) as node:
        for record in records:  # the invite would refuse it after the install: say it now
            if record.plan.role not in node.roles:
                raise UsageError(
                    f"role {record.plan.role!r} (for {record.key}) is not in the roles file; "
                    f"the roles are: {', '.join(node.roles.by_name)}"
                )
        return asyncio.run(
            deploy_hosts(
                node,
                reach,
                records,
                Access(policy, identity),
                report,
                lambda: notify_agent(where),
                wheel,
            )
        )


def _finish(ended: list[HostRecord], json_: bool) -> None:
    failed = [r for r in ended if not r.finished]
    if json_:
        print_json({"hosts": [_record_json(r) for r in ended]})
    else:
        for record in ended:
            if record.finished:
                out.print(
                    f"[green]{escape(record.key)}[/green]: deployed in {record.seconds:.1f} s "
                    f"(agent {record.agent_id})"
                )
            else:
                step = record.failed
                why = step.said if step else "not finished"
                at = rules.TITLES[step.name] if step else "?"
                err.print(
                    f"[red]{escape(record.key)}[/red]: failed at '{at}': {escape(why)}; "
                    f"fix it, then: bzzz deploy --retry {escape(record.key)}"
                )
    if failed:
        raise typer.Exit(1)


def _record_json(record: HostRecord) -> dict[str, Any]:
    return {
        "host": record.key,
        "finished": record.finished,
        "agent_id": record.agent_id,
        "seconds": round(record.seconds, 3),
        "steps": [
            {"name": s.name, "state": s.state, "seconds": s.seconds, "said": s.said}
            for s in record.steps
        ],
    }


def setup(
    home: HomeOption = None,
    hosts: Annotated[
        Path | None,
        typer.Option(
            "--hosts", help="A file of machines: USER@HOST[:PORT] [ROLE] a line, # comments."
        ),
    ] = None,
    mdns: Annotated[
        bool, typer.Option("--mdns/--no-mdns", help="Look for machines with mDNS.")
    ] = True,
    mdns_seconds: Annotated[
        float, typer.Option("--mdns-seconds", help="How long to listen for mDNS.")
    ] = 3.0,
    user: Annotated[
        str | None,
        typer.Option("--user", help="SSH user for machines found by mDNS (default: yours)."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Ask nothing: deploy every listed machine with its role."),
    ] = False,
    role: RoleOption = "developer",
    identity: IdentityOption = None,
    known_hosts: KnownHostsOption = None,
    accept_new: AcceptNewOption = False,
    prefix: PrefixOption = rules.DEFAULT_PREFIX,
    listen: ListenOption = rules.DEFAULT_LISTEN,
    systemd: SystemdOption = "auto",
    unit_dir: UnitDirOption = None,
    address: AddressOption = None,
    wheel: WheelOption = None,
) -> None:
    """A guided set-up of a cluster: find machines (a hosts file, mDNS), choose which to
    deploy to with which role, deploy them with live progress, retry the failed ones."""
    from bzzz.deploy import machines as found_machines
    from bzzz.deploy.state import load_records

    where = resolve_home(home)
    if address is not None:
        check_address("--address", address)
    _reach(where, address)  # before anything is asked: the agent must run
    machines = found_machines.read_hosts_file(hosts) if hosts is not None else []
    if mdns:
        out.print(f"looking for machines with mDNS for {mdns_seconds:.0f} s ...")
        listed = {m.host for m in machines}
        machines += [
            m for m in asyncio.run(found_machines.browse(mdns_seconds)) if m.host not in listed
        ]
    if not machines:
        raise UsageError(
            "no machines found: list them in a file (--hosts FILE: USER@HOST[:PORT] [ROLE] "
            "a line) or make them announce SSH over mDNS (avahi-daemon)"
        )
    saved = load_records(where)
    ssh_user = user or getpass.getuser()
    table = Table("#", "machine", "ssh", "found by", "role", "last deployment")
    for n, m in enumerate(machines, 1):
        target = m.target or rules.Target(ssh_user, m.host, m.port)
        last = saved.get(str(target))
        state = "never" if last is None else ("done" if last.finished else "failed")
        table.add_row(str(n), m.name, str(target), m.source, m.role or role, state)
    out.print(table)
    chosen = _choose(machines, yes)
    plans = []
    for m in chosen:
        target = m.target or rules.Target(
            ssh_user if yes else Prompt.ask(f"SSH user for {m.name}", default=ssh_user),
            m.host,
            m.port,
        )
        host_role = m.role or role
        if not yes:
            host_role = Prompt.ask(f"role for {target}", default=host_role)
        plans.append(
            rules.check_plan(
                HostPlan(
                    target=target,
                    role=host_role,
                    prefix=prefix,
                    listen=listen,
                    systemd=_systemd(systemd),
                    unit_dir=unit_dir,
                )
            )
        )
    records = [rules.start_record(p, _now()) for p in plans]
    while True:
        ended = _deploy(where, records, identity, known_hosts, accept_new, address, wheel, False)
        failed = [r for r in ended if not r.finished]
        for record in ended:
            if record.finished:
                out.print(
                    f"[green]{escape(record.key)}[/green]: deployed in {record.seconds:.1f} s"
                )
        if not failed:
            out.print(f"{len(ended)} machine(s) deployed and joined")
            return
        for record in failed:
            step = record.failed
            err.print(
                f"[red]{escape(record.key)}[/red]: failed at "
                f"'{rules.TITLES[step.name] if step else '?'}': "
                f"{escape(step.said if step else 'not finished')}"
            )
        if yes or not Confirm.ask(
            f"Retry the {len(failed)} failed machine(s) from where they stopped?", default=True
        ):
            err.print("retry later with: bzzz deploy --retry")
            raise typer.Exit(1)
        records = failed


def _choose(machines: list[Any], yes: bool) -> list[Any]:
    """The machines to deploy to: all with --yes, else as the operator answers."""
    if yes:
        return list(machines)
    while True:
        answer = Prompt.ask("Deploy to which machines? (numbers like 1,3 or all)", default="all")
        text = answer.strip().lower()
        if text == "all":
            return list(machines)
        try:
            picks = [int(part) for part in text.replace(" ", ",").split(",") if part]
        except ValueError:
            picks = []
        if picks and all(1 <= p <= len(machines) for p in picks):
            return [machines[p - 1] for p in dict.fromkeys(picks)]
        err.print(f"answer 'all' or numbers from 1 to {len(machines)}, e.g. 1,3")


def _now() -> int:
    from bzzz.clock import now_ms

    return now_ms()
