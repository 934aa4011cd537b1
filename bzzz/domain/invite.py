"""Invite tokens: what `bzzz invite` prints and `bzzz join` uses once.

A token carries the cluster's id (its founding entry's hash) and name, where to reach
the inviter, the inviter's key (so the newcomer checks the SSH host key it meets), and a
random secret. Only the secret's hash is logged, in the
inviter's `member.invited` entry; the newcomer proves it holds the secret at SSH login.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import cbor2

from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.errors import UsageError

TOKEN_PREFIX = "bzzz-invite-"
SECRET_BYTES = 16
_HASH_PREFIX = b"bzzz/invite/v1\n"
_VERSION = 2


@dataclass(frozen=True, slots=True)
class InviteToken:
    cluster: str
    cluster_id: bytes
    host: str
    port: int
    inviter: bytes
    secret: bytes
    role: str
    expires_ms: int

    @property
    def secret_hash(self) -> bytes:
        return secret_hash(self.secret)


def secret_hash(secret: bytes) -> bytes:
    return hashlib.sha256(_HASH_PREFIX + secret).digest()


def encode_token(token: InviteToken) -> str:
    body = cbor2.dumps(
        [
            _VERSION,
            token.cluster,
            token.cluster_id,
            token.host,
            token.port,
            token.inviter,
            token.secret,
            token.role,
            token.expires_ms,
        ],
        canonical=True,
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_token(text: str) -> InviteToken:
    """The token in `text`, or a UsageError that says what is wrong with it."""
    cleaned = text.strip()
    if not cleaned.startswith(TOKEN_PREFIX) or len(cleaned) > 1024:
        raise UsageError(f"not an invite token (one starts with {TOKEN_PREFIX!r})")
    data = cleaned[len(TOKEN_PREFIX) :]
    try:
        items: Any = cbor2.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except Exception:
        raise UsageError("the invite token is damaged: copy it again, whole") from None
    if isinstance(items, list) and items and items[0] == 1:
        raise UsageError("this invite was made by an older bzzz: ask the inviter for a new one")
    if not isinstance(items, list) or len(items) != 9 or items[0] != _VERSION:
        raise UsageError("the invite token is of an unknown version: upgrade bzzz") from None
    _, cluster, cluster_id, host, port, inviter, secret, role, expires = items
    well_typed = (
        isinstance(cluster, str)
        and type(cluster_id) is bytes
        and len(cluster_id) == HASH_BYTES
        and isinstance(host, str)
        and type(port) is int
        and 0 < port < 65536
        and type(inviter) is bytes
        and len(inviter) == KEY_BYTES
        and type(secret) is bytes
        and len(secret) == SECRET_BYTES
        and isinstance(role, str)
        and type(expires) is int
    )
    if not well_typed:
        raise UsageError("the invite token is damaged: copy it again, whole")
    return InviteToken(cluster, cluster_id, host, port, inviter, secret, role, expires)


JOIN_USER_PREFIX = "join."


def join_username(secret: bytes, name: str) -> str:
    """The SSH user name a newcomer logs in with: it carries the secret and its name."""
    return f"{JOIN_USER_PREFIX}{secret.hex()}.{name}"


def parse_join_username(username: str) -> tuple[bytes, str] | None:
    """(secret, name) from a join user name, or None if it is not one."""
    if not username.startswith(JOIN_USER_PREFIX) or len(username) > 200:
        return None
    secret_hex, _, name = username[len(JOIN_USER_PREFIX) :].partition(".")
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        return None
    if len(secret) != SECRET_BYTES or not name:
        return None
    return secret, name
