"""CA rotation on nodes and proxies: follow the cluster's CAs and re-issue this host's identity.

Each node or proxy service runs one RotationWatcher. Every CA_POLL_INTERVAL seconds it reads the
CAs from auth and hands them to the service (which then trusts every checking key: old and new
during a rotation, only the new ones after it), and when the host CA's rotation is in a phase where
servers move to the current signer (update_servers, rollback, or standby for a host that slept
through those) while this host's certificate was signed by another key, it asks auth for a new
identity with its current one (POST /v1/hosts/reissue), stores it in data_dir (0600) and hands it
to the service, which swaps its SSH host key in place: live sessions are untouched, new
connections see the new certificate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.auth.rotation import ROLLBACK, STANDBY, UPDATE_SERVERS, phase_of
from teleport.service import identity as idstore
from teleport.types.identity import HostIdentity, host_identity_from_dict

log = logging.getLogger(__name__)

# phases in which a server whose certificate is not the current signer's re-issues it (in init
# and update_clients the clients may not trust the new host CA yet)
REISSUE_PHASES = (UPDATE_SERVERS, ROLLBACK, STANDBY)


def ca_spec(authorities: list[dict[str, Any]], ca_type: str) -> dict[str, Any] | None:
    """The spec of the CA of this type in a get_authorities() answer."""
    for ca in authorities:
        spec = ca.get("spec") or {}
        if spec.get("type", (ca.get("metadata") or {}).get("name")) == ca_type:
            return dict(spec)
    return None


def signed_by_current(cert: str, host_spec: dict[str, Any]) -> bool:
    """Whether the host certificate was signed by the host CA's current signer (checking_keys[0])."""
    keys = host_spec.get("checking_keys") or []
    if not keys:
        return True  # nothing to compare with: never re-issue on a malformed answer
    signer = asyncssh.import_certificate(cert).signing_key.public_data  # type: ignore[attr-defined]
    return bool(signer == asyncssh.import_public_key(str(keys[0])).public_data)


def needs_reissue(cert: str, host_spec: dict[str, Any]) -> bool:
    """Whether a server holding `cert` should re-issue its identity now."""
    return phase_of(host_spec) in REISSUE_PHASES and not signed_by_current(cert, host_spec)


class RotationWatcher:
    """Polls the CAs for one service (node or proxy) of this process and re-issues its identity."""

    def __init__(
        self,
        data_dir: str,
        identity: HostIdentity,
        auth: AuthClient,
        addresses: list[str],
        on_authorities: Callable[[list[dict[str, Any]]], None],
        on_identity: Callable[[HostIdentity], Awaitable[None]],
    ) -> None:
        self.data_dir = data_dir
        self.identity = identity
        self.auth = auth
        self.addresses = addresses
        self.on_authorities = on_authorities
        self.on_identity = on_identity

    async def check_once(self) -> None:
        """One poll: hand the CAs to the service; re-issue the identity when the phase asks."""
        cas = await self.auth.get_authorities()
        self.on_authorities(cas)
        host = ca_spec(cas, "host")
        if host is None or not needs_reissue(self.identity.cert, host):
            return
        data = await self.auth.call("POST", "/v1/hosts/reissue", {"addresses": self.addresses})
        ident = host_identity_from_dict(data)
        if ident.host_id != self.identity.host_id or ident.role != self.identity.role:
            raise ValueError("auth re-issued an identity for another host")  # never expected
        idstore.save_identity(self.data_dir, ident)
        idstore.identity_tls_files(self.data_dir, ident)
        self.identity = ident
        await self.on_identity(ident)
        log.warning(
            "CA rotation (%s): re-issued the %s identity of host %s under the current host CA",
            phase_of(host), ident.role.lower(), ident.host_id,
        )

    async def run(self) -> None:
        """Poll until cancelled; failures are logged and retried at the next poll."""
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # auth restarting or unreachable: keep what we have
                log.warning("cannot check the cluster's CAs for a rotation: %s", exc)
            await asyncio.sleep(defaults.CA_POLL_INTERVAL)
