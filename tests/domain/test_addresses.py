"""Addresses and the announcements that carry them (`bzzz.domain.addresses`)."""

from __future__ import annotations

import cbor2
import pytest

from bzzz.domain import addresses as ad
from bzzz.domain.payload import encode_payload

A, B = b"a" * 32, b"b" * 32


def _body(at: object) -> bytes:
    return encode_payload({"at": at})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7420", ("127.0.0.1", 7420)),
        ("[::1]:7420", ("::1", 7420)),
        ("node-1.example.org:1", ("node-1.example.org", 1)),
    ],
)
def test_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert ad.parse_address(text) == expected
    assert ad.format_address(*expected) == text


@pytest.mark.parametrize("text", ["", "host", ":7420", "h:99999", "999.1.1.1:1", "a b:1"])
def test_bad_addresses_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|neither an IP"):
        ad.parse_address(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.0.0.0:7420", "every interface"),
        ("[::]:7420", "every interface"),
        ("10.0.0.1:0", "port 0"),
        ("x" * 300 + ":1", "longer than"),
        ("nonsense", "HOST:PORT"),
    ],
)
def test_what_cannot_be_dialed(text: str, problem: str) -> None:
    found = ad.dialable(text)
    assert found is not None and problem in found


def test_a_specific_listen_address_is_announced_as_bound() -> None:
    assert ad.to_announce("10.0.0.5:0", 7001, [], ["10.0.0.9"]) == ("10.0.0.5:7001",)


def test_advertise_wins_over_everything() -> None:
    announced = ad.to_announce(
        "0.0.0.0:7420", 7420, ["gw.example.org:443", "gw.example.org:443"], []
    )
    assert announced == ("gw.example.org:443",)


def test_a_wildcard_listen_announces_each_interface_but_loopback() -> None:
    interfaces = ["127.0.0.1", "10.1.0.2", "::1", "fe80::1%eth0", "fd00::2", "10.1.0.2"]
    announced = ad.to_announce("0.0.0.0:7420", 7420, [], interfaces)
    assert announced == ("10.1.0.2:7420", "[fd00::2]:7420")


def test_a_machine_with_only_loopback_announces_loopback() -> None:
    assert ad.to_announce("0.0.0.0:7420", 7420, [], ["127.0.0.1"]) == ("127.0.0.1:7420",)


def test_announcements_are_cut_to_the_limit() -> None:
    interfaces = [f"10.0.0.{n}" for n in range(1, 20)]
    assert len(ad.to_announce("0.0.0.0:1", 1, [], interfaces)) == ad.MAX_ADDRESSES


def test_the_directory_keeps_each_members_latest_announcement() -> None:
    book = ad.Directory()
    assert book.note(A, 3, _body(["10.0.0.1:1"]))
    assert not book.note(A, 2, _body(["10.0.0.9:1"]))  # older: ignored
    assert not book.note(A, 4, _body(["10.0.0.1:1"]))  # the same again: no change
    assert book.note(A, 5, _body(["10.0.0.2:1", "[fd00::1]:2"]))
    assert book.note(B, 1, _body([]))  # a member may say it cannot be dialed
    assert book.of(A) == ("10.0.0.2:1", "[fd00::1]:2")
    assert book.of(B) == () and book.of(b"c" * 32) == ()
    assert book.members() == {A: ("10.0.0.2:1", "[fd00::1]:2"), B: ()}


@pytest.mark.parametrize(
    "body",
    [
        b"\xff not cbor",
        cbor2.dumps(["10.0.0.1:1"]),
        _body("10.0.0.1:1"),
        _body([7]),
        _body(["0.0.0.0:1"]),
        _body([f"10.0.0.{n}:1" for n in range(ad.MAX_ADDRESSES + 1)]),
    ],
)
def test_a_malformed_announcement_is_ignored(body: bytes) -> None:
    book = ad.Directory()
    assert book.note(A, 1, _body(["10.0.0.1:1"]))
    assert not book.note(A, 2, body)
    assert book.of(A) == ("10.0.0.1:1",)
