"""Entry bodies: the canonical CBOR of a payload map.

Payloads come from people (JSON on the command line), from BZZZ itself (which also puts
keys and hashes in as bytes) and from peers (any CBOR), so encoding validates strictly
and decoding for display never fails.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import cbor2

from bzzz.domain.limits import MAX_BODY_BYTES, MAX_PAYLOAD_DEPTH
from bzzz.errors import EntryError

_INT_RANGE = 2**64


def _check(value: Any, path: str, depth: int) -> None:
    if depth > MAX_PAYLOAD_DEPTH:
        raise EntryError("bad-body", f"{path}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, path)
        return
    if value is None or isinstance(value, bool | bytes):
        return
    if isinstance(value, int):
        if not -_INT_RANGE < value < _INT_RANGE:
            raise EntryError("bad-body", f"{path}: integer does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EntryError("bad-body", f"{path}: numbers must be finite")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EntryError("bad-body", f"{path}: keys must be text")
            _check_text(key, f"{path} (a key)")
            name = key if key.isprintable() else ascii(key)  # keeps the message one line
            _check(item, f"{path}.{name}", depth + 1)
        return
    raise EntryError("bad-body", f"{path}: unsupported value of type {type(value).__name__}")


def _check_text(value: str, path: str) -> None:
    """Text must be encodable as UTF-8: a lone surrogate (from JSON's "\\ud800", or from
    bytes that were not UTF-8 in a command line) cannot be."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        what = (
            f"byte 0x{code - 0xDC00:02x}, which is not UTF-8,"  # how Python keeps such bytes
            if 0xDC80 <= code <= 0xDCFF
            else f"a lone surrogate \\u{code:04x}"
        )
        raise EntryError(
            "bad-body",
            f"{path}: text must be valid Unicode; it has {what} at character {exc.start}",
        ) from None


def encode_payload(data: Any) -> bytes:
    """Canonical CBOR of a JSON-like map; EntryError says which part is unacceptable."""
    if not isinstance(data, dict):
        raise EntryError("bad-body", f"a payload must be a map (JSON object), got {_name(data)}")
    _check(data, "data", 0)
    body: bytes = cbor2.dumps(data, canonical=True)
    if len(body) > MAX_BODY_BYTES:
        raise EntryError(
            "too-large", f"payload is {len(body)} bytes encoded; the limit is {MAX_BODY_BYTES}"
        )
    return body


def _name(value: Any) -> str:
    return {list: "a list", str: "text", type(None): "null", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, cbor2.CBORTag):
        return {"$tag": value.tag, "value": _jsonable(value.value)}
    return repr(value)


def payload_map(body: bytes) -> dict[str, Any] | None:
    """The payload as a map, or None when it is not CBOR or not a map: for rules that read
    BZZZ's own entry kinds and ignore malformed ones."""
    try:
        data = cbor2.loads(body)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def decode_payload(body: bytes) -> Any:
    """The payload as JSON-compatible data, for display. Never raises.

    Bytes become ``{"$base64": ...}`` and unknown tags ``{"$tag": n, "value": ...}``; a
    body that is not CBOR at all becomes ``{"$undecodable": "<base64>"}``.
    """
    try:
        return _jsonable(cbor2.loads(body))
    except Exception:
        return {"$undecodable": base64.b64encode(body).decode()}
