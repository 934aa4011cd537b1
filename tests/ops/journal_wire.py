"""journald's native protocol read back, as journald reads it: `KEY=VALUE` lines, or
`KEY` then a 64-bit little-endian length, the value and a newline; a datagram too big
to send comes as a sealed memfd passed with SCM_RIGHTS."""

from __future__ import annotations

import os
import socket
import struct


def parse(data: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n", "no newline after a value"
            i = end + 10 + size
        fields.setdefault(key.decode(), []).append(value.decode())
    return fields


def receive(sock: socket.socket) -> dict[str, list[str]]:
    """One entry from a bound datagram socket, read from a passed memfd if one came
    (then the entry has `_VIA_MEMFD`, which no sender may set: journal field names do
    not start with `_`)."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
    if fds:
        try:
            with os.fdopen(fds[0], "rb", closefd=False) as handle:
                handle.seek(0)
                data = handle.read()
        finally:
            for fd in fds:
                os.close(fd)
    entry = parse(data)
    if fds:
        entry["_VIA_MEMFD"] = ["1"]
    return entry
