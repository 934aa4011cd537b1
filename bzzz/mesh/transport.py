"""SSH between members, with asyncssh. A node's host key is its agent key; peers log in
with their agent keys. Both sides check the other's key against membership, so a key
that is not a member is refused during the SSH handshake, before any data moves.

A newcomer logs in as ``join.<secret>.<name>`` (see `bzzz.domain.invite`): the server
lets it in only if the secret matches an open invite of this node's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE

from bzzz.domain.invite import parse_join_username
from bzzz.domain.limits import KEY_BYTES
from bzzz.errors import PeerRefused, PeerUnreachable
from bzzz.home.keys import Identity

log = logging.getLogger("bzzz.mesh")

SUBSYSTEM = "bzzz-replication/1"
MEMBER_USER = "bzzz"
# AES-GCM is several times faster than chacha20 here (DESIGN.md, Mesh); compression
# would only spend CPU on signed, mostly incompressible entries.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
WINDOW = 8 * 1024 * 1024
PACKET = 256 * 1024
LOGIN_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0
# What both ends of a mesh connection use; `config=[]` keeps ~/.ssh/config out of it.
_COMMON: dict[str, Any] = {
    "encryption_algs": list(CIPHERS),
    "compression_algs": None,
    "window": WINDOW,
    "max_pktsize": PACKET,
    "login_timeout": LOGIN_TIMEOUT_S,
    "keepalive_interval": KEEPALIVE_S,
    "config": [],
}


def drop_ignore_packets(conn: asyncssh.SSHClientConnection | asyncssh.SSHServerConnection) -> None:
    """Stop asyncssh sending an empty MSG_IGNORE before every packet, once the
    connection is up.

    That packet is RFC 4251's defence (9.3.1) against chosen-plaintext attacks on CBC
    ciphers. Our connections negotiate only AEAD ciphers (`CIPHERS`), where it buys
    nothing, and it doubles what every message costs: a second encryption and socket
    write on the sender, and a second packet (often a second wake-up) on the receiver.
    asyncssh has no setting for it, so the connection's `send_packet` is wrapped; a
    connection on any other cipher is left as it is. `test_transport` checks that no
    ignore packet is sent, so an asyncssh that sends them another way is noticed."""
    if conn.get_extra_info("send_cipher") not in CIPHERS:
        return
    send_packet = conn.send_packet

    def send_all_but_ignore(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype != MSG_IGNORE:
            send_packet(pkttype, *args, handler=handler)

    conn.send_packet = send_all_but_ignore  # type: ignore[method-assign]


def key_id(key: asyncssh.SSHKey) -> bytes | None:
    """The agent id (raw Ed25519 public key) of an SSH key, or None for other key types."""
    if key.algorithm != b"ssh-ed25519":
        return None
    data = key.public_data
    return data[-KEY_BYTES:] if len(data) == 51 else None


def ssh_key(identity: Identity) -> asyncssh.SSHKey:
    return asyncssh.import_private_key(identity.ssh_private_pem())


@dataclass
class Login:
    """Who logged in on a server connection: a member, or a newcomer with an invite."""

    peer: bytes
    join_secret: bytes | None = None
    join_name: str | None = None


class Gate:
    """What the transport asks the mesh: is this key a member, may this secret join.
    Both may read the store, so they are coroutines."""

    def __init__(
        self,
        is_member: Callable[[bytes], Awaitable[bool]],
        may_join: Callable[[bytes], Awaitable[bool]],
    ) -> None:
        self.is_member = is_member
        self.may_join = may_join


class _Server(asyncssh.SSHServer):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.login: Login | None = None
        self._username = ""

    def begin_auth(self, username: str) -> bool:
        self._username = username
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        peer = key_id(key)
        if peer is None:
            return False
        if username == MEMBER_USER and await self.gate.is_member(peer):
            self.login = Login(peer)
            return True
        join = parse_join_username(username)
        if join is not None and await self.gate.may_join(join[0]):
            self.login = Login(peer, join[0], join[1])
            return True
        log.info("refused ssh login of %s as %r: not a member", peer.hex()[:12], username[:40])
        return False


class _Client(asyncssh.SSHClient):
    def __init__(self, accept_host: Callable[[bytes], bool]) -> None:
        self.accept_host = accept_host
        self.peer: bytes | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        peer = key_id(key)
        if peer is None or not self.accept_host(peer):
            log.info("refused host key of %s:%s: not a member", host, port)
            return False
        self.peer = peer
        return True


Streams = tuple[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]]
ServeSession = Callable[[Login, Streams, str, Callable[[], None]], Awaitable[None]]


async def start_server(
    identity: Identity, host: str, port: int, gate: Gate, serve: ServeSession
) -> asyncssh.SSHAcceptor:
    key = ssh_key(identity)

    async def on_process(process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.get_extra_info("connection")
        server = conn.get_owner() if conn is not None else None
        login = server.login if isinstance(server, _Server) else None
        peername = process.get_extra_info("peername") or ("?", 0)
        if process.subsystem != SUBSYSTEM or login is None:
            process.exit(1)
            return
        address = f"{peername[0]}:{peername[1]}"
        drop_ignore_packets(conn)
        try:
            await serve(login, (process.stdin, process.stdout), address, conn.close)
        finally:
            process.exit(0)

    return await asyncssh.create_server(
        lambda: _Server(gate),
        host,
        port,
        server_host_keys=[key],
        process_factory=on_process,
        encoding=None,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        line_editor=False,
        **_COMMON,
    )


async def dial(
    identity: Identity,
    host: str,
    port: int,
    accept_host: Callable[[bytes], bool],
    username: str = MEMBER_USER,
) -> tuple[asyncssh.SSHClientConnection, bytes, Streams]:
    """Connect and open the replication channel: (connection, peer id, streams).
    Raises `PeerRefused` when the peer refuses our login or we refuse its host key,
    and `PeerUnreachable` for anything else that keeps us from it."""
    try:
        conn, client = await asyncssh.create_connection(
            lambda: _Client(accept_host),
            host,
            port,
            username=username,
            client_keys=[ssh_key(identity)],
            known_hosts=([], [], []),
            agent_path=None,
            preferred_auth=["publickey"],
            server_host_key_algs=["ssh-ed25519"],
            connect_timeout=LOGIN_TIMEOUT_S,
            **_COMMON,
        )
    except asyncssh.PermissionDenied as error:
        raise PeerRefused(f"{host}:{port} refused our login: {error.reason}") from None
    except asyncssh.HostKeyNotVerifiable:
        raise PeerRefused(
            f"{host}:{port} is not the member we expected there (its host key)"
        ) from None
    except (asyncssh.Error, OSError, TimeoutError, ValueError) as error:
        raise PeerUnreachable(f"{host}:{port}: {_reason(error)}") from None
    assert isinstance(client, _Client) and client.peer is not None
    drop_ignore_packets(conn)
    try:
        writer, reader, _stderr = await conn.open_session(subsystem=SUBSYSTEM, encoding=None)
    except (asyncssh.Error, OSError) as error:
        conn.close()
        raise PeerUnreachable(f"{host}:{port}: {_reason(error)}") from None
    except BaseException:
        conn.close()
        raise
    return conn, client.peer, (reader, writer)


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncssh.Error):
        return error.reason
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
