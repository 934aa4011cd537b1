"""Finding machines to deploy to: a hosts file (one `USER@HOST[:PORT] [ROLE]` a line,
`#` comments), and mDNS: SSH servers that announce themselves (`_ssh._tcp`, Avahi's
default on many Linux machines) and BZZZ agents (`_bzzz._tcp`) already running."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from bzzz.domain.deploy import Target, parse_target
from bzzz.errors import UsageError, one_line

SSH_SERVICE = "_ssh._tcp.local."
BZZZ_SERVICE = "_bzzz._tcp.local."
RESOLVE_TIMEOUT_MS = 1500


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine that may be deployed to: where, and what we know of it."""

    host: str
    port: int  # its SSH port (22 when only its BZZZ agent was seen)
    name: str
    source: str  # "list" or "mDNS ssh" / "mDNS bzzz"
    target: Target | None = None  # from the hosts file (with its user)
    role: str | None = None


def read_hosts_file(path: Path) -> list[Machine]:
    """The machines a hosts file lists; UsageError naming the line that is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--hosts {path}: {one_line(exc)}") from None
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) > 2:
            raise UsageError(f"{path}:{number}: expected USER@HOST[:PORT] [ROLE], got {line!r}")
        try:
            target = parse_target(words[0])
        except UsageError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        role = words[1] if len(words) == 2 else None
        found.append(Machine(target.host, target.port, target.host, "list", target, role))
    return found


async def browse(seconds: float) -> list[Machine]:
    """SSH servers and BZZZ agents announced on the local networks within `seconds`."""
    seen: dict[tuple[str, str], None] = {}

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            seen[(service_type, name)] = None

    zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    try:
        browser = AsyncServiceBrowser(
            zc.zeroconf, [SSH_SERVICE, BZZZ_SERVICE], handlers=[on_change]
        )
        await asyncio.sleep(seconds)
        await browser.async_cancel()
        found: dict[str, Machine] = {}
        for service_type, name in list(seen):
            info = AsyncServiceInfo(service_type, name)
            if not await info.async_request(zc.zeroconf, RESOLVE_TIMEOUT_MS):
                continue
            label = name.removesuffix("." + service_type).split(".")[0]
            for address in info.parsed_addresses(IPVersion.V4Only)[:1]:
                ssh = service_type == SSH_SERVICE
                known = found.get(address)
                if known is not None and (known.source == "mDNS ssh" or not ssh):
                    continue
                port = int(info.port or 22) if ssh else 22
                source = "mDNS ssh" if ssh else "mDNS bzzz"
                found[address] = Machine(address, port, label, source)
        return sorted(found.values(), key=lambda m: (m.name, m.host))
    except OSError as exc:
        raise UsageError(f"mDNS browsing failed: {one_line(exc)} (use --no-mdns)") from None
    finally:
        with contextlib.suppress(Exception):
            await zc.async_close()
