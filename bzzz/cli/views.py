"""What the status views become as JSON: the control socket's answers and `--json`
output (a stable interface), and what the human renderings are made from."""

from __future__ import annotations

from typing import Any

from bzzz.domain import hmmm as hm
from bzzz.domain.board import Cursor, TaskView
from bzzz.domain.tasks import TaskState, source_of
from bzzz.mesh.views import MeshView, PeerView
from bzzz.projections.leadership import ElectionView


def mesh_json(view: MeshView, entries: int) -> dict[str, Any]:
    ours = {a.hex(): s for a, s in view.heads.items()}
    peers = [peer_json(p) for p in view.peers]
    peers += [
        {
            "agent_id": d.agent_id.hex() if d.agent_id else None,
            "name": d.name,
            "address": d.address,
            "connected": False,
            "last_heard": None,
            "last_error": d.last_error,
            "heads": {"ours": ours, "theirs": {}},
        }
        for d in view.unreached
    ]
    return {
        "agent_id": view.agent_id.hex(),
        "name": view.name,
        "role": view.role,
        "authority": view.authority,
        "cluster": view.cluster,
        "cluster_id": view.cluster_id.hex() if view.cluster_id else None,
        "member": view.member,
        "listen": view.listen,
        "started": view.started_ms,
        "store": {"url": view.store, "entries": entries, "logs": len(view.heads)},
        "heads": ours,
        "members": view.members,
        "peers": peers,
    }


def peer_json(peer: PeerView) -> dict[str, Any]:
    ours, theirs = peer.ours, peer.theirs
    availability = peer.availability
    return {
        "agent_id": peer.agent_id.hex(),
        "name": peer.name,
        "address": peer.address,
        "listen": peer.listen,
        "direction": "out" if peer.outbound else "in",
        "connected": True,
        "connected_at": peer.connected_at_ms,
        "last_heard": peer.last_heard_ms,
        "heads": {
            "ours": {a.hex(): s for a, s in ours.items()},
            "theirs": {a.hex(): s for a, s in theirs.items()},
        },
        "we_lack": sum(max(0, s - ours.get(a, 0)) for a, s in theirs.items()),
        "they_lack": sum(max(0, s - theirs.get(a, 0)) for a, s in ours.items()),
        "availability": None
        if availability is None
        else {
            "state": availability.state,
            "current_tasks": availability.current_tasks,
            "max_tasks": availability.max_tasks,
            "capabilities": list(availability.capabilities),
            "models": list(availability.models),
        },
    }


def election_json(view: ElectionView) -> dict[str, Any]:
    proof, names = view.proof, view.names
    data: dict[str, Any] = {
        "term": view.term,
        "role": view.role,
        "leader": view.leader.hex() if view.leader else None,
        "leader_proven": view.leader_proven,
        "voters": [
            {"agent_id": v.agent_id.hex(), "name": v.name, "reachable": v.reachable}
            | ({"score": v.score} if view.role is not None else {})
            for v in view.voters
        ],
    }
    if view.role is not None:
        data["transferring_to"] = view.transferring_to.hex() if view.transferring_to else None
    data["history"] = [
        {
            "term": p.term,
            "leader": p.leader.hex(),
            "name": names.get(p.leader),
            "trigger": p.trigger,
            "leaderless_ms": p.leaderless_ms,
            "elected_at": p.ts,
            "votes": len(p.voters),
        }
        for p in sorted(proof.proven.values(), key=lambda p: p.term)
    ]
    data["split_brain"] = [
        {"term": t, "leaders": sorted(x.hex() for x in ls)}
        for t, ls in sorted(proof.split_brain.items())
    ]
    data["unproven"] = [
        {"term": c.term, "leader": c.leader.hex(), "problem": why} for c, why in proof.unproven
    ]
    return data


def task_json(view: TaskView, names: dict[bytes, str]) -> dict[str, Any]:
    """A task as `bzzz task list --json` shows it."""
    t, spec = view.task, view.task.spec
    done_by = t.hold.holder if t.hold is not None and view.state is TaskState.DONE else None
    return {
        "id": spec.id,
        "title": spec.title,
        "state": view.state.value,
        "priority": spec.priority,
        "type": spec.type,
        "needs": list(spec.needs),
        "source": source_of(spec.id),
        "scope": t.scope,
        "holder": view.holder.hex() if view.holder else None,
        "holder_name": names.get(view.holder) if view.holder else None,
        "token": list(view.token) if view.token else None,
        "done_by": done_by.hex() if done_by else None,
        "url": spec.url,
        "repo": spec.repo,
        "labels": list(spec.labels),
        "depends_on": list(spec.depends_on),
        "waiting_for": list(view.waiting_for),
        "opened": t.opened_ts,
        "result": t.result,
        "link": t.link,
        "reason": t.reason,
    }


def task_detail_json(view: TaskView, names: dict[bytes, str]) -> dict[str, Any]:
    """`bzzz task show --json`: the task, its body and its history from the entries."""
    return {
        **task_json(view, names),
        "body": view.task.spec.body,
        "history": [
            {
                "ts": e.ts,
                "author": e.author.hex(),
                "author_name": names.get(e.author),
                "kind": e.kind,
                "what": e.what,
                "entry": e.entry.hex(),
            }
            for e in view.task.history
        ],
    }


def cursor_json(cursor: Cursor) -> dict[str, Any]:
    return {
        "source": cursor.source,
        "synced": cursor.ts,
        "problems": list(cursor.problems),
        "retry_at": cursor.retry_at,
    }


def thread_json(view: hm.ThreadView, names: dict[bytes, str]) -> dict[str, Any]:
    """An HMMM thread as `bzzz hmmm show --json` shows it (and its transcript is made of)."""
    thread = view.thread
    plan = thread.plan
    return {
        "id": thread.id,
        "task": thread.task,
        "state": view.state.value,
        "why": view.why,
        "until": view.until,
        "participants": [p.hex() for p in thread.participants],
        "plan": None
        if plan is None
        else {
            "entry": plan.hash.hex(),
            "author": plan.message.author.hex(),
            "text": plan.message.text,
            "files": list(plan.files),
            "token": list(plan.token),
            "revision": len(thread.plans) - 1,
        },
        "messages": [
            {
                "entry": m.hash.hex(),
                "author": m.author.hex(),
                "author_name": names.get(m.author),
                "kind": m.kind,
                "ts": m.ts,
                "parent": m.parent.hex() if m.parent else None,
                "hop": m.hop,
                "text": m.text,
                **{
                    k: m.data[k]
                    for k in ("query_type", "severity", "resolve", "outcome", "to", "rule", "files")
                    if k in m.data and isinstance(m.data[k], str | list)
                },
            }
            for m in thread.messages
        ],
        "ignored": [
            {"entry": h.hex(), "author": a.hex(), "rule": rule} for h, a, rule in thread.ignored
        ],
    }
