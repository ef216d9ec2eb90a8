"""Advertising the machine on the LAN so slicers' discovery lists it by its name.

Cura's OctoPrint plugin browses ``_octoprint._tcp``; PrusaSlicer's and Orca's
"Browse" browse it too (Bonjour); ``_http._tcp`` lets a browser's or phone's
service list find the web UI.  The TXT record carries what OctoPrint's own
discovery plugin announces (``path``, ``version``, ``api``, ``model``, ``vendor``).

:func:`service_infos` builds the records (pure); :class:`Advertiser` registers them
with python-zeroconf while it runs.  The daemon runs it only when the web server
listens on a non-loopback address and ``slicer.zeroconf`` is on, so tests and a
gateway bound to 127.0.0.1 never send multicast.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable

import ifaddr
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

import gateway
from gateway.supervisor import Service

log = logging.getLogger(__name__)

OCTOPRINT = "_octoprint._tcp.local."
HTTP = "_http._tcp.local."
#: Longest DNS-SD instance name (RFC 6763 section 4.1.1: 63 bytes).
MAX_INSTANCE = 63


def instance_name(machine_name: str) -> str:
    """The machine's name as a DNS-SD instance name (dots would split the label)."""
    text = re.sub(r"[.\x00-\x1f]", " ", machine_name).strip() or "Machine gateway"
    while len(text.encode()) > MAX_INSTANCE:
        text = text[:-1]
    return text


def service_infos(
    machine_name: str, machine_id: str, kind: str, port: int, addresses: list[str]
) -> list[ServiceInfo]:
    """The ``_octoprint._tcp`` and ``_http._tcp`` records for this machine."""
    name = instance_name(machine_name)
    host = f"{re.sub(r'[^a-z0-9-]', '-', machine_id)}.local."
    txt = {
        "path": "/",
        "version": "1.10.0",
        "api": "0.1",
        "model": kind,
        "vendor": "makerspace machine gateway",
        "gateway": gateway.__version__,
    }
    return [
        ServiceInfo(
            kind_type,
            f"{name}.{kind_type}",
            port=port,
            properties=txt,
            server=host,
            parsed_addresses=addresses,
        )
        for kind_type in (OCTOPRINT, HTTP)
    ]


def lan_addresses(bound: str) -> list[str]:
    """The addresses slicers can reach the web server on: the bound one, or with a
    wildcard (0.0.0.0 / ::) every non-loopback, non-link-local address of the Pi."""
    if bound not in ("", "0.0.0.0", "::"):
        return [bound]
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            addr = ipaddress.ip_address(text)
            if addr.is_loopback or addr.is_link_local:
                continue
            if bound == "0.0.0.0" and addr.version != 4:
                continue
            found.append(text)
    return found


def should_advertise(enabled: bool, host: str) -> bool:
    if not enabled:
        return False
    try:
        return not ipaddress.ip_address(host or "0.0.0.0").is_loopback
    except ValueError:
        return host != "localhost"


class Advertiser(Service):
    """Registers the machine's services with zeroconf while the daemon runs."""

    name = "zeroconf"
    optional = True

    def __init__(
        self,
        *,
        machine_name: str,
        machine_id: str,
        kind: str,
        host: str,
        port: Callable[[], int | None],
    ) -> None:
        super().__init__()
        self.machine_name = machine_name
        self.machine_id = machine_id
        self.kind = kind
        self.host = host
        self._port = port
        self.registered: list[ServiceInfo] = []

    async def run(self) -> None:
        port = self._port()
        if port is None:
            raise RuntimeError("the web server has no port yet; zeroconf waits for it")
        addresses = lan_addresses(self.host)
        if not addresses:
            raise RuntimeError("no network address to advertise on; is the Pi on the LAN?")
        infos = service_infos(self.machine_name, self.machine_id, self.kind, port, addresses)
        zc = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.All)
        try:
            for info in infos:
                await zc.async_register_service(info, allow_name_change=True)
                self.registered.append(info)
            log.info("advertising %s on %s port %d", self.machine_name, addresses, port)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            for info in self.registered:
                try:
                    await zc.async_unregister_service(info)
                except Exception as err:  # already gone with the network
                    log.debug("zeroconf unregister failed: %s", err)
            self.registered.clear()
            await zc.async_close()
