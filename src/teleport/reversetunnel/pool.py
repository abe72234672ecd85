"""A tunnel agent per proxy: the node keeps a reverse tunnel to every proxy of its cluster.

Every TUNNEL_DISCOVERY_INTERVAL the pool asks for the proxies' heartbeats (`discover`), opens a
tunnel to each newly announced tunnel address and closes the tunnel to an address no longer
announced (a proxy that stopped), without restarting the node. When discovery fails the tunnels
held stay as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from teleport import defaults
from teleport.aio import cancel_and_wait
from teleport.config.addr import HostPort, parse_host_port
from teleport.reversetunnel import discovery
from teleport.reversetunnel.agent import SocketHandler, TunnelAgent
from teleport.types.identity import HostIdentity

log = logging.getLogger(__name__)

Discover = Callable[[], Awaitable[list[dict[str, Any]]]]


class AgentPool:
    """Tunnel agents keyed by the proxy tunnel address they hold (run() until cancelled)."""

    def __init__(self, configured: HostPort, identity: Callable[[], HostIdentity],
                 host_ca_keys: Callable[[], list[str]], handle: SocketHandler, discover: Discover,
                 interval: float = defaults.TUNNEL_DISCOVERY_INTERVAL) -> None:
        self.configured = str(configured)
        self.identity = identity
        self.host_ca_keys = host_ca_keys
        self.handle = handle
        self.discover = discover
        self.interval = interval
        self.agents: dict[str, tuple[TunnelAgent, asyncio.Task[None]]] = {}

    def addrs(self) -> list[str]:
        """The proxy tunnel addresses held (or being reconnected) now."""
        return sorted(self.agents)

    async def run(self) -> None:
        """Hold the configured tunnel, then follow the proxies the cluster announces."""
        try:
            await self.sync([self.configured])
            while True:
                try:
                    proxies = await self.discover()
                except Exception as exc:  # auth unreachable: keep the tunnels we hold
                    log.info("cannot list the cluster's proxies (keeping the tunnels held): %s", exc)
                else:
                    await self.sync(discovery.wanted(discovery.announced_tunnel_addrs(proxies),
                                                     self.configured))
                await asyncio.sleep(self.interval)
        finally:
            await self.close()

    async def sync(self, want: list[str]) -> None:
        """Open tunnels to the addresses in `want` not held yet; close the others."""
        for addr in want:
            if addr in self.agents:
                continue
            agent = TunnelAgent(parse_host_port(addr, defaults.PROXY_TUNNEL_PORT), self.identity,
                                self.host_ca_keys, self.handle)
            log.info("opening a reverse tunnel to the proxy at %s", addr)
            self.agents[addr] = (agent, asyncio.create_task(agent.run()))
        for addr in [a for a in self.agents if a not in want]:
            agent, task = self.agents.pop(addr)
            log.info("the proxy at %s is no longer announced: closing the tunnel to it", addr)
            tasks: list[asyncio.Task[None]] = [task]
            await cancel_and_wait(tasks)
            await agent.close()

    async def close(self) -> None:
        """Close every tunnel."""
        await self.sync([])
