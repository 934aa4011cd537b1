"""The membership operations behind the CLI: invites, joining, removal and roles."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from bzzz.clock import now_ms
from bzzz.domain import membership as ms
from bzzz.domain.addresses import parse_address
from bzzz.domain.identity import short_id
from bzzz.domain.invite import SECRET_BYTES, InviteToken
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import Role, may_change_role, may_invite, may_remove
from bzzz.errors import (
    ConnectionClosed,
    PeerRefused,
    PeerUnreachable,
    ProtocolError,
    UsageError,
)
from bzzz.home.config import write_config
from bzzz.home.node import Node, cluster_id_of
from bzzz.projections.membership import read_membership
from bzzz.services.ports import Inviters

log = logging.getLogger("bzzz.join")


MAX_INVITE_DAYS = 30  # a token is a secret on the loose until it is used


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '2d' in milliseconds, at most MAX_INVITE_DAYS."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    cleaned = text.strip().lower()
    number, unit = cleaned[:-1], cleaned[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise UsageError(f"--expires {text!r}: expected a duration such as 90s, 30m, 1h or 2d")
    seconds = int(number) * units[unit]
    if seconds > MAX_INVITE_DAYS * 86400:
        raise UsageError(
            f"--expires {text!r}: an invite lasts at most {MAX_INVITE_DAYS} days; "
            "make a new one when it runs out"
        )
    return seconds * 1000


def create_invite(node: Node, role: str, expires: str, reach: str) -> InviteToken:
    """An invite for `role`, valid for `expires`, to this node at `reach` (HOST:PORT)."""
    membership = _membership(node)
    me = node.identity.public_key
    if membership.cluster is None or membership.cluster_id is None:
        raise UsageError("this node is in no cluster; found one with `bzzz init --new-cluster`")
    actor = _my_role(node, membership)
    wanted = node.roles.get(role)
    if wanted is None:
        raise UsageError(f"no role named {role!r}; the roles are: {', '.join(node.roles.by_name)}")
    if not may_invite(actor, wanted):
        raise UsageError(f"a {actor.name} may not invite a {role}")
    host, port = parse_address(reach)
    if host in ("0.0.0.0", "::", ""):
        raise UsageError(
            f"the agent listens on {reach}, which a newcomer cannot dial: "
            "give the address to reach this node with --address HOST:PORT"
        )
    secret = os.urandom(SECRET_BYTES)
    token = InviteToken(
        membership.cluster,
        membership.cluster_id,
        host,
        port,
        me,
        secret,
        role,
        now_ms() + parse_duration(expires),
    )
    body = ms.invited_body(token.secret_hash, role, token.expires_ms)
    node.store.append(node.identity.signer, ms.INVITED, encode_payload(body), now_ms())
    return token


def _membership(node: Node) -> ms.Membership:
    return read_membership(node.store, node.roles, cluster_id_of(node.config))


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
    membership = _membership(node)
    actor = _my_role(node, membership)
    gone, role = _member(node, membership, member)
    if not may_remove(actor, role):
        raise UsageError(f"a {actor.name} may not remove a {role.name}")
    if not ms.leaves_an_administrator(membership, node.roles, member):
        raise UsageError(
            f"{gone.name} is the last member who can admit and remove others: without it "
            "nobody could join the cluster again; give another member such a role first"
        )
    body = ms.removed_body(member, reason)
    node.store.append(node.identity.signer, ms.REMOVED, encode_payload(body), now_ms())
    return gone


def change_role(node: Node, member: bytes, role: str) -> ms.Member:
    membership = _membership(node)
    actor = _my_role(node, membership)
    target, old = _member(node, membership, member)
    new = node.roles.get(role)
    if new is None:
        raise UsageError(f"no role named {role!r}; the roles are: {', '.join(node.roles.by_name)}")
    if not may_change_role(actor, old, new):
        raise UsageError(f"a {actor.name} may not make a {old.name} a {new.name}")
    if not ms.leaves_an_administrator(membership, node.roles, member, role):
        raise UsageError(
            f"{target.name} is the last member who can admit and remove others: as a "
            f"{role} nobody could; give another member such a role first"
        )
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


async def join_cluster(node: Node, token: InviteToken, inviters: Inviters) -> JoinResult:
    """Log in to the inviter with the token, get admitted, and copy every log it holds;
    then this node's config names the cluster. A join that fails writes no config."""
    began = time.monotonic()
    failure: str | None = None
    try:
        await inviters.join(token, node.config.name)
    except PeerRefused:
        failure = (
            "the inviter refused the token: it was used already, has expired, "
            "or belongs to another node"
        )
    except PeerUnreachable as error:
        failure = f"cannot reach the inviter: {error}; is its `bzzz agent` running?"
    except ProtocolError as error:
        failure = f"the inviter broke the protocol: {error}"
        if error.code == "wrong-cluster":
            failure = (
                f"the inviter is not in the cluster the token names ({error}): the token "
                "was changed or is for another cluster; ask the inviter for a new one"
            )
    except (ConnectionClosed, TimeoutError):
        failure = (
            "the inviter closed the connection before we were admitted and caught up: the "
            "token was used already, has expired, or names another cluster"
        )
    membership = read_membership(node.store, node.roles, token.cluster_id)
    me = membership.members.get(node.identity.public_key)
    if me is None:
        raise UsageError(failure or "the inviter let us in but its logs do not show our admission")
    peers = list(dict.fromkeys([*node.config.mesh.peers, f"{token.host}:{token.port}"]))
    settings = node.config.mesh.model_copy(
        update={"cluster": token.cluster, "cluster_id": token.cluster_id.hex(), "peers": peers}
    )
    write_config(node.home, node.config.model_copy(update={"role": me.role, "mesh": settings}))
    if failure is not None:  # admitted: the node is a member; its agent catches up
        raise UsageError(
            f"admitted to cluster {token.cluster}, but copying its logs did not finish "
            f"({failure}); start `bzzz agent` on this home: it catches up"
        )
    log.info("joined %s via %s", token.cluster, short_id(token.inviter))
    heads = node.store.heads()
    return JoinResult(
        token.cluster,
        token.inviter,
        sum(h.seq for h in heads.values()),
        len(heads),
        time.monotonic() - began,
    )
