"""Invites, joining and removal: the membership operations behind the CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bzzz.clock import now_ms
from bzzz.domain import membership as ms
from bzzz.domain.identity import short_id
from bzzz.domain.invite import SECRET_BYTES, InviteToken, join_username
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import Role, may_change_role, may_invite, may_remove
from bzzz.errors import UsageError
from bzzz.home.config import parse_address, write_config
from bzzz.mesh.framing import ConnectionClosed
from bzzz.mesh.mesh import Mesh
from bzzz.mesh.session import PeerSession
from bzzz.mesh.transport import dial
from bzzz.projections.membership import read_membership
from bzzz.runtime.control import ask
from bzzz.runtime.node import Node

log = logging.getLogger("bzzz.join")
JOIN_TIMEOUT_S = 600.0


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '2d' in milliseconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    cleaned = text.strip().lower()
    number, unit = cleaned[:-1], cleaned[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise UsageError(f"--expires {text!r}: expected a duration such as 90s, 30m, 1h or 2d")
    return int(number) * units[unit] * 1000


def create_invite(node: Node, role: str, expires: str, address: str | None) -> InviteToken:
    membership = read_membership(node.store, node.roles)
    me = node.identity.public_key
    if membership.cluster is None:
        raise UsageError("this node is in no cluster; found one with `bzzz init --new-cluster`")
    actor = _my_role(node, membership)
    wanted = node.roles.get(role)
    if wanted is None:
        raise UsageError(f"no role named {role!r}; the roles are: {', '.join(node.roles.by_name)}")
    if not may_invite(actor, wanted):
        raise UsageError(f"a {actor.name} may not invite a {role}")
    reach = address or _daemon_address(node.home) or node.config.mesh.listen
    host, port = parse_address(reach)
    if host in ("0.0.0.0", "::", ""):
        raise UsageError(
            f"the agent listens on {reach}, which a newcomer cannot dial: "
            "give the address to reach this node with --address HOST:PORT"
        )
    secret = os.urandom(SECRET_BYTES)
    token = InviteToken(
        membership.cluster, host, port, me, secret, role, now_ms() + parse_duration(expires)
    )
    body = ms.invited_body(token.secret_hash, role, token.expires_ms)
    node.store.append(node.identity.signer, ms.INVITED, encode_payload(body), now_ms())
    return token


def _daemon_address(home: Path) -> str | None:
    answer = ask(home, {"op": "status"})
    if answer is None or not answer.get("ok"):
        return None
    listen = answer["status"].get("listen")
    return listen if isinstance(listen, str) else None


def _my_role(node: Node, membership: ms.Membership) -> Role:
    me = membership.members.get(node.identity.public_key)
    if me is None:
        raise UsageError("this node is not a member of its cluster")
    role = node.roles.get(me.role)
    if role is None:
        raise UsageError(f"this node's role {me.role!r} is not in the roles file")
    return role


def _member(node: Node, membership: ms.Membership, member: bytes) -> tuple[ms.Member, Role]:
    target = membership.members.get(member)
    if target is None:
        raise UsageError(f"{member.hex()} is not a member (see `bzzz member list`)")
    role = node.roles.get(target.role)
    if role is None:
        raise UsageError(f"the member's role {target.role!r} is not in the roles file")
    return target, role


def remove_member(node: Node, member: bytes, reason: str) -> ms.Member:
    membership = read_membership(node.store, node.roles)
    actor = _my_role(node, membership)
    gone, role = _member(node, membership, member)
    if not may_remove(actor, role):
        raise UsageError(f"a {actor.name} may not remove a {role.name}")
    body = ms.removed_body(member, reason)
    node.store.append(node.identity.signer, ms.REMOVED, encode_payload(body), now_ms())
    return gone


def change_role(node: Node, member: bytes, role: str) -> ms.Member:
    membership = read_membership(node.store, node.roles)
    actor = _my_role(node, membership)
    target, old = _member(node, membership, member)
    new = node.roles.get(role)
    if new is None:
        raise UsageError(f"no role named {role!r}; the roles are: {', '.join(node.roles.by_name)}")
    if not may_change_role(actor, old, new):
        raise UsageError(f"a {actor.name} may not make a {old.name} a {new.name}")
    body = ms.role_changed_body(member, role)
    node.store.append(node.identity.signer, ms.ROLE_CHANGED, encode_payload(body), now_ms())
    return target


@dataclass
class JoinResult:
    cluster: str
    inviter: bytes
    entries: int
    logs: int
    seconds: float


async def join_cluster(node: Node, token: InviteToken) -> JoinResult:
    """Log in to the inviter with the token, get admitted, and copy every log it holds."""
    settings = node.config.mesh.model_copy(update={"cluster": token.cluster})
    mesh = Mesh(node.store, node.identity, node.config, node.roles, settings=settings)
    await mesh.refresh()
    began = time.monotonic()
    username = join_username(token.secret, node.config.name)
    try:
        conn, peer, streams = await dial(
            node.identity, token.host, token.port, lambda key: key == token.inviter, username
        )
    except asyncssh.PermissionDenied:
        raise UsageError(
            "the inviter refused the token: it was used already, has expired, "
            "or belongs to another node"
        ) from None
    except (asyncssh.Error, OSError, TimeoutError) as error:
        raise UsageError(
            f"cannot reach the inviter at {token.host}:{token.port}: {error}; "
            "is its `bzzz agent` running?"
        ) from None
    async with conn:
        session = PeerSession(mesh, peer, f"{token.host}:{token.port}", True, streams, conn.close)
        await session.open()
        runner = asyncio.create_task(session.run())
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                while not _caught_up(mesh, session):
                    if runner.done():
                        runner.result()
                        raise UsageError("the inviter closed the connection before we caught up")
                    await asyncio.sleep(0.05)
        except ConnectionClosed:
            raise UsageError("the inviter closed the connection before we caught up") from None
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    await mesh.refresh()
    if not mesh.membership.is_member(node.identity.public_key):
        raise UsageError("the inviter let us in but its logs do not show our admission")
    peers = list(dict.fromkeys([*node.config.mesh.peers, f"{token.host}:{token.port}"]))
    role = mesh.membership.members[node.identity.public_key].role
    config = node.config.model_copy(
        update={"role": role, "mesh": settings.model_copy(update={"peers": peers})}
    )
    write_config(node.home, config)
    log.info("joined %s via %s", token.cluster, short_id(token.inviter))
    return JoinResult(
        token.cluster,
        token.inviter,
        sum(mesh.heads.values()),
        len(mesh.heads),
        time.monotonic() - began,
    )


def _caught_up(mesh: Mesh, session: PeerSession) -> bool:
    return all(mesh.heads.get(a, 0) >= s for a, s in session.their_heads.items())
