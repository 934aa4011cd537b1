"""A bench-only SSH server with the mesh's transport settings that swallows bytes: the
baseline for what one SSH channel carries here. Run as a separate process so that the
sender and the receiver each have a core, as two daemons do.

    python -m bench.ssh_sink PORT
"""

from __future__ import annotations

import asyncio
import sys

import asyncssh

from bzzz.mesh import transport


class _Open(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True


async def _sink(process: asyncssh.SSHServerProcess[bytes]) -> None:
    total = 0
    while chunk := await process.stdin.read(1 << 20):
        total += len(chunk)
    process.stdout.write(str(total).encode())
    process.exit(0)


async def main(port: int) -> None:
    server = await asyncssh.create_server(
        _Open,
        "127.0.0.1",
        port,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        process_factory=_sink,
        encoding=None,
        encryption_algs=list(transport.CIPHERS),
        compression_algs=None,
        window=transport.WINDOW,
        max_pktsize=transport.PACKET,
        config=[],
    )
    print("ready", flush=True)
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
