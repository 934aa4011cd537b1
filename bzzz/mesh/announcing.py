"""Announcing where this node listens: a signed `mesh.addresses` entry of its own log
(`bzzz.domain.addresses`), appended once the node is a member and whenever what it would
announce (its listen address; with a wildcard each interface's; or `mesh.advertise`)
differs from its latest announcement, as the address book (`address_book.py`) has it.
Every other member dials it at the addresses announced (`dialing.py`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from bzzz.domain import addresses as ad
from bzzz.domain.entry import Entry
from bzzz.domain.membership import Membership
from bzzz.errors import StoreError
from bzzz.home.config import MeshConfig
from bzzz.mesh.address_book import AddressBook

log = logging.getLogger("bzzz.mesh")


class AnnounceHost(Protocol):
    """What announcing needs of the node it speaks for (the `Mesh`)."""

    @property
    def me(self) -> bytes: ...

    @property
    def membership(self) -> Membership: ...

    @property
    def listen(self) -> str: ...

    @property
    def bound(self) -> tuple[str, int] | None: ...

    @property
    def settings(self) -> MeshConfig: ...

    async def append(self, kind: str, payload: dict[str, Any]) -> Entry: ...


class Announcer:
    """Appends this node's announcement when it is due, one at a time."""

    def __init__(
        self,
        host: AnnounceHost,
        book: AddressBook,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._host = host
        self._book = book
        self._spawn = spawn
        self._announcing = False

    def maybe_announce(self) -> None:
        """Announce where this node listens, once it is a member and whenever that
        differs from its latest announcement."""
        host = self._host
        if self._announcing or host.bound is None or not host.membership.is_member(host.me):
            return
        wanted = self._book.stale(host.me, host.listen, host.bound[1], host.settings.advertise)
        if wanted is not None:
            self._announcing = True
            self._spawn(self._announce(wanted))

    async def _announce(self, addresses: tuple[str, ...]) -> None:
        try:
            await self._host.append(ad.ANNOUNCED, ad.announced_body(addresses))
            log.info("announced our addresses: %s", ", ".join(addresses))
        except StoreError as error:
            log.error("could not announce our addresses: %s", error)
        finally:
            self._announcing = False
