"""A service's own cluster identity on disk (data_dir/keys/<role>.json, mode 0600), and joining."""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from teleport.ca import tlsca
from teleport.defaults import AUTH_SERVER_NAME
from teleport.errors import AccessDenied, ConnectionProblem, error_from_dict
from teleport.files import ensure_private_dir, write_secret
from teleport.types.identity import HostIdentity, host_identity_from_dict, host_identity_to_dict

log = logging.getLogger(__name__)


def keys_dir(data_dir: str) -> str:
    return ensure_private_dir(os.path.join(data_dir, "keys"))


def identity_path(data_dir: str, role: str) -> str:
    return os.path.join(keys_dir(data_dir), f"{role.lower()}.json")


def load_identity(data_dir: str, role: str) -> HostIdentity | None:
    """The identity stored by an earlier join, or None."""
    path = identity_path(data_dir, role)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return host_identity_from_dict(json.load(f))


def save_identity(data_dir: str, ident: HostIdentity) -> None:
    write_secret(identity_path(data_dir, ident.role), json.dumps(host_identity_to_dict(ident)))


def identity_tls_files(data_dir: str, ident: HostIdentity) -> tuple[str, str]:
    """Write the x509 identity as PEM files (for ssl contexts); returns (cert, key) paths."""
    base = os.path.join(keys_dir(data_dir), ident.role.lower())
    write_secret(base + "-cert.pem", ident.tls_cert)
    write_secret(base + "-key.pem", ident.tls_key)
    return base + "-cert.pem", base + "-key.pem"


def host_uuid(data_dir: str) -> str:
    """This host's stable id (data_dir/host_uuid), created on first start."""
    import uuid

    path = os.path.join(data_dir, "host_uuid")
    if os.path.exists(path):
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    value = str(uuid.uuid4())
    write_secret(path, value)
    return value


Connector = Callable[[ssl.SSLContext], aiohttp.BaseConnector]


def _tcp(ctx: ssl.SSLContext) -> aiohttp.BaseConnector:
    return aiohttp.TCPConnector(ssl=ctx)


async def fetch_tls_ca(addr: str, connector: Connector = _tcp) -> bytes:
    """Fetch the cluster's TLS CA certificate before we trust anything (checked by pin after)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(connector=connector(insecure),
                                     timeout=aiohttp.ClientTimeout(total=15)) as s:
        async with s.get(f"https://{addr}/v1/tlsca", ssl=insecure) as resp:
            if resp.status != 200:
                raise ConnectionProblem(f"auth server {addr} answered HTTP {resp.status}")
            return await resp.read()


async def join_cluster(
    auth_addrs: list[str],
    token: str,
    role: str,
    host_id: str,
    nodename: str,
    addresses: list[str],
    ca_pin: str | None,
    proof: tuple[str, str] | None = None,
    connector: Connector = _tcp,
) -> HostIdentity:
    """Present a join token to the auth server and receive this service's identity.

    `proof` (cert, key files) is an identity this host already holds (another of its roles): it
    shows auth that we are that host, which a token alone never does for an existing host id.
    `connector` makes the connections (a node behind a firewall: through the proxy's relay).
    """
    if not token:
        raise AccessDenied(
            f"the {role} service has no identity yet and no join token: start it with "
            "--token=TOKEN (from 'tctl nodes add') and --auth-server=HOST:3025"
        )
    last: Exception | None = None
    for addr in auth_addrs:
        try:
            ca_pem = await fetch_tls_ca(addr, connector)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            last = exc
            continue
        if ca_pin:
            tlsca.check_ca_pin(ca_pem, ca_pin)
        else:
            log.warning(
                "joining without a CA pin: the auth server at %s is trusted on first use; "
                "pass --ca-pin from 'tctl nodes add' to verify it", addr
            )
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        if proof is not None:
            ctx.load_cert_chain(*proof)
        body: dict[str, Any] = {
            "token": token,
            "role": role,
            "host_id": host_id,
            "nodename": nodename,
            "addresses": addresses,
        }
        async with aiohttp.ClientSession(connector=connector(ctx),
                                         timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.post(
                f"https://{addr}/v1/register", json=body, ssl=ctx, server_hostname=AUTH_SERVER_NAME
            ) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    raise error_from_dict(data if isinstance(data, dict) else {})
                return host_identity_from_dict(data)
    raise ConnectionProblem(
        f"cannot reach the auth server at {', '.join(auth_addrs)} to join the cluster: {last}"
    )


def other_identity_files(data_dir: str, role: str) -> tuple[str, str] | None:
    """The TLS files of an identity this host holds for a role other than `role`, if any."""
    for other in ("proxy", "node", "auth"):
        if other == role.lower():
            continue
        ident = load_identity(data_dir, other)
        if ident is not None:
            return identity_tls_files(data_dir, ident)
    return None
