"""What one small mesh message costs in CPU: sending a frame over the mesh's SSH transport,
receiving it, and the Ed25519 signature every entry and ephemeral message carries. These
are the floor under the idle leader's CPU (beats to every follower, ten a second) and
under a claim's CPU (every entry received and checked by every node).

The receiver is a separate process, as a peer daemon is. Frames are paced 1 ms apart,
so each costs what a live message costs (a wake-up, no batching); the pacing's own cost
is measured in the same run and taken off.

    python -m bench.frames [--frames 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import timeit
from typing import Any

import pyrage
import uvloop

from bzzz.domain.identity import Ed25519Signer, verify_signature
from bzzz.domain.wire import Ephemeral
from bzzz.home.keys import Identity
from bzzz.mesh.framing import read_message, write_message
from bzzz.mesh.transport import Gate, Login, Streams, dial, start_server
from tests.support.agents import free_port

BODY_BYTES = 150  # about a signed election beat
PACE_S = 0.001


def _identity(seed: bytes) -> Identity:
    return Identity(Ed25519Signer(seed * 32), pyrage.x25519.Identity.generate())


async def _receive(port: int, frames: int) -> None:
    """Serve one connection; print the CPU per frame read after the first."""
    done = asyncio.Event()

    async def serve(login: Login, streams: Streams, address: str, close: object) -> None:
        reader, _ = streams
        await read_message(reader)
        began = time.process_time()
        for _ in range(frames - 1):
            await read_message(reader)
        used = time.process_time() - began
        print(json.dumps({"receive_us": round(used / (frames - 1) * 1e6, 1)}), flush=True)
        done.set()

    async def anyone(key: bytes) -> bool:
        return True

    async def nobody(secret: bytes) -> bool:
        return False

    server = await start_server(_identity(b"r"), "127.0.0.1", port, Gate(anyone, nobody), serve)
    print("ready", flush=True)
    await done.wait()
    server.close()


async def _send(port: int, frames: int) -> dict[str, Any]:
    conn, _, (_, writer) = await dial(_identity(b"s"), "127.0.0.1", port, lambda key: True)
    message = Ephemeral(os.urandom(BODY_BYTES))
    await asyncio.sleep(0.3)  # the channel opening settles
    began = time.process_time()
    for _ in range(frames):
        await asyncio.sleep(PACE_S)
    pacing = time.process_time() - began
    began = time.process_time()
    for _ in range(frames):
        await write_message(writer, message)
        await asyncio.sleep(PACE_S)
    used = time.process_time() - began - pacing
    conn.close()
    return {"send_us": round(used / frames * 1e6, 1), "pacing_us": round(pacing / frames * 1e6, 1)}


def _signatures(rounds: int = 2000) -> dict[str, Any]:
    signer = Ed25519Signer(b"k" * 32)
    message = os.urandom(200)
    signature = signer.sign(message)
    sign = [timeit.timeit(lambda: signer.sign(message), number=rounds) for _ in range(3)]
    check = [
        timeit.timeit(
            lambda: verify_signature(signer.public_key, message, signature), number=rounds
        )
        for _ in range(3)
    ]
    return {
        "sign_us": round(min(sign) / rounds * 1e6, 1),  # the least disturbed of three
        "verify_us": round(min(check) / rounds * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--receiver-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver_port:
        uvloop.run(_receive(args.receiver_port, args.frames))
        return
    port = free_port()
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.frames",
            f"--frames={args.frames}",
            f"--receiver-port={port}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        sent = uvloop.run(_send(port, args.frames))
        received = json.loads(receiver.stdout.readline())
    finally:
        receiver.wait(timeout=30)
    out = {"bench": "frames", "frames": args.frames, "body_bytes": BODY_BYTES}
    out |= sent | received | _signatures()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
