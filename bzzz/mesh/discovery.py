"""mDNS discovery with zeroconf: announce `_bzzz._tcp.local.` with our agent id and
cluster, and dial members of our cluster that announce themselves. mDNS only says who
might be there: liveness comes from heartbeats, and keys are still checked at SSH login.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import ifaddr
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from bzzz.domain.addresses import parse_address
from bzzz.domain.limits import KEY_BYTES

if TYPE_CHECKING:
    from bzzz.mesh.mesh import Mesh

log = logging.getLogger("bzzz.mesh")

SERVICE = "_bzzz._tcp.local."
RESOLVE_TIMEOUT_MS = 3000


def _addresses(host: str) -> list[str]:
    """Addresses to announce: the listen host, or every IPv4 address for a wildcard."""
    if host not in ("0.0.0.0", "", "::"):
        return [host]

    found = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")
    ]
    return found or ["127.0.0.1"]


class Discovery:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        mesh = self.mesh
        host, port = parse_address(mesh.advertised)
        addresses = _addresses(host)
        self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=addresses)
        name = f"{mesh.name}-{mesh.me.hex()[:12]}.{SERVICE}"
        self._info = AsyncServiceInfo(
            SERVICE,
            name,
            port=port,
            properties={
                "id": mesh.me.hex(),
                "cluster": mesh.cluster_id.hex() if mesh.cluster_id else "",
                "name": mesh.cluster or "",
                "port": str(port),
            },
            parsed_addresses=addresses,
        )
        await self._zc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE, handlers=[self._on_change])
        log.info("mDNS: announced %s on %s", name, ", ".join(addresses))

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
        for task in self._pending:
            task.cancel()
        if self._zc is not None:
            if self._info is not None:
                await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.create_task(self._resolve(service_type, name))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            return
        props = {
            k.decode(errors="replace"): (v or b"").decode(errors="replace")
            for k, v in info.properties.items()
        }
        try:
            peer = bytes.fromhex(props.get("id", ""))
        except ValueError:
            return
        if len(peer) != KEY_BYTES or peer == self.mesh.me:
            return
        ours = self.mesh.cluster_id
        if ours is None or props.get("cluster") != ours.hex() or info.port is None:
            return
        for address in info.parsed_addresses(IPVersion.V4Only)[:1]:
            log.info("mDNS: found %s at %s:%d", peer.hex()[:12], address, info.port)
            self.mesh.add_peer(f"{address}:{info.port}", expected=peer)


__all__ = ["SERVICE", "Discovery"]
