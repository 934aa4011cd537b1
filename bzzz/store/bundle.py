"""Bundles: a portable file of entries, for `bzzz log export/import` and `bzzz audit`.

Format (documented in fixtures/entries/README.md): the 12 bytes ``BZZZBUNDLE\\x00\\x02``
(magic, then format version 2), the 32-byte id of the cluster the logs come from (its
founding entry's hash; zeros when unknown), then any number of frames, each a 4-byte
big-endian length followed by that many bytes of one entry exactly as signed. Version 1
has no cluster id and is still read. A frame longer than the entry limit is refused
before it is read, so a hostile file cannot make us allocate. The cluster id in a file
is what its writer says, not a proof: it lets an import of another cluster's logs fail
with a clear message, while membership is still decided from the entries alone.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bzzz.domain.limits import MAX_ENTRY_BYTES
from bzzz.errors import BundleError, NotABundleError

MAGIC_V1 = b"BZZZBUNDLE\x00\x01"
MAGIC = b"BZZZBUNDLE\x00\x02"
CLUSTER_BYTES = 32
_NO_CLUSTER = bytes(CLUSTER_BYTES)
_LENGTH = struct.Struct(">I")


def write_bundle(path: Path, raws: Iterable[bytes], cluster_id: bytes | None = None) -> int:
    """Write entries to `path` atomically (a partial file never takes its name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC)
            handle.write(cluster_id if cluster_id is not None else _NO_CLUSTER)
            for raw in raws:
                handle.write(_LENGTH.pack(len(raw)))
                handle.write(raw)
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from None
    return count


def _header(handle: BinaryIO, path: Path) -> bytes | None:
    """Read the magic and the cluster id; the id, or None when the file names none."""
    magic = handle.read(len(MAGIC))
    if magic == MAGIC_V1:
        return None
    if magic != MAGIC:
        raise NotABundleError(
            f"{path} is not a BZZZ bundle (it does not start with the bundle magic)"
        )
    cluster = handle.read(CLUSTER_BYTES)
    if len(cluster) < CLUSTER_BYTES:
        raise BundleError(f"{path}: truncated in its header")
    return None if cluster == _NO_CLUSTER else cluster


def _frames(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    _header(handle, path)
    index = 0
    while True:
        header = handle.read(_LENGTH.size)
        if not header:
            return
        index += 1
        if len(header) < _LENGTH.size:
            raise BundleError(f"{path}: truncated in the length of entry #{index}")
        (length,) = _LENGTH.unpack(header)
        if length > MAX_ENTRY_BYTES:
            raise BundleError(
                f"{path}: entry #{index} declares {length} bytes, above the limit of "
                f"{MAX_ENTRY_BYTES}; the file is damaged or hostile"
            )
        raw = handle.read(length)
        if len(raw) < length:
            raise BundleError(f"{path}: truncated in entry #{index}")
        yield raw


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """The bundle file open for reading; what the OS says becomes a BundleError."""
    try:
        with open(path, "rb") as handle:
            yield handle
    except FileNotFoundError:
        raise NotABundleError(f"no such bundle: {path}") from None
    except IsADirectoryError:
        raise NotABundleError(f"{path} is a folder, not a bundle") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_bundle(path: Path) -> Iterator[bytes]:
    """Every entry's bytes, in file order. Structural damage raises BundleError."""
    with _opened(path) as handle:
        yield from _frames(handle, path)


def bundle_cluster(path: Path) -> bytes | None:
    """The cluster id the bundle's writer named, if any."""
    with _opened(path) as handle:
        return _header(handle, path)


def check_bundle(path: Path) -> int:
    """Read the whole bundle once without keeping it: its entry count, or BundleError."""
    return sum(1 for _ in read_bundle(path))
