"""Bundles: a portable file of entries, for `bzzz log export/import` and `bzzz audit`.

Format (documented in fixtures/entries/README.md): the 12 bytes ``BZZZBUNDLE\\x00\\x01``
(magic, then format version 1), then any number of frames, each a 4-byte big-endian
length followed by that many bytes of one entry exactly as signed. A frame longer than
the entry limit is refused before it is read, so a hostile file cannot make us allocate.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bzzz.domain.limits import MAX_ENTRY_BYTES
from bzzz.errors import BundleError, NotABundleError

MAGIC = b"BZZZBUNDLE\x00\x01"
_LENGTH = struct.Struct(">I")


def write_bundle(path: Path, raws: Iterable[bytes]) -> int:
    """Write entries to `path` atomically (a partial file never takes its name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC)
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


def _frames(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise NotABundleError(
            f"{path} is not a BZZZ bundle (it does not start with the bundle magic)"
        )
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


def read_bundle(path: Path) -> Iterator[bytes]:
    """Every entry's bytes, in file order. Structural damage raises BundleError."""
    try:
        with open(path, "rb") as handle:
            yield from _frames(handle, path)
    except FileNotFoundError:
        raise NotABundleError(f"no such bundle: {path}") from None
    except IsADirectoryError:
        raise NotABundleError(f"{path} is a folder, not a bundle") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_bundle(path: Path) -> int:
    """Read the whole bundle once without keeping it: its entry count, or BundleError."""
    return sum(1 for _ in read_bundle(path))
