"""tctl's trusted cluster commands: `tokens add --type=trusted_cluster`, the `trusted_cluster`
resource in get/create/rm, and the trusted CAs in `auth ls`. Parsing and printing only."""

from __future__ import annotations

import argparse
import os
from typing import Any

from teleport.cli.common import table
from teleport.errors import BadParameter

KIND = "trusted_cluster"
PATH = "/v1/trustedclusters"


async def tokens_add(c: Any, a: argparse.Namespace, cfg: Any) -> None:
    """A join token: of type trusted_cluster for a leaf cluster, or for hosts (node, proxy, auth)."""
    from teleport.durations import format_duration, parse_duration
    from teleport.types.resources import split_csv

    roles = split_csv(a.type)
    if not roles:
        raise BadParameter("--type needs a token type: trusted_cluster, node, proxy or auth")
    ttl = parse_duration(a.ttl)
    tok = await c.create_token(roles, ttl)
    print(f"The {','.join(tok['roles'])} token: {tok['token']}")
    print(f"This token will expire in {format_duration(ttl)}.")
    if "trusted_cluster" in tok["roles"]:
        print()
        print("Use it in the leaf cluster's trusted_cluster resource (spec.token) and create it there")
        print("with 'tctl create'. It works once.")
        pin = _proxy_cert_pin(cfg)
        if pin:
            print(f"The pin of this cluster's web proxy certificate (spec.ca_pin): {pin}")


def _proxy_cert_pin(cfg: Any) -> str:
    """The pin of the web proxy's HTTPS certificate on this host ("" when there is none here)."""
    from teleport.ca.tlsca import ca_pin

    p = cfg.proxy_service
    path = p.https_cert_file or os.path.join(cfg.teleport.data_dir, "proxy", "webproxy_cert.pem")
    try:
        with open(path, "rb") as f:
            return ca_pin(f.read())
    except (OSError, ValueError):
        return ""


async def get_items(c: Any, name: str) -> list[dict[str, Any]]:
    items = await c.call("GET", PATH)
    if name:
        items = [i for i in items if i["metadata"]["name"] == name]
        if not items:
            from teleport.errors import NotFound

            raise NotFound(f"trusted cluster {name!r} not found")
    return list(items)


async def create(c: Any, doc: dict[str, Any], force: bool) -> bool:
    res = await c.call("POST", PATH, {KIND: doc, "upsert": force})
    return bool(res["created"])


async def remove(c: Any, name: str) -> None:
    from teleport.types.names import api_path

    await c.call("DELETE", api_path("/v1/trustedclusters/{cluster}", cluster=name))


def render_table(items: list[dict[str, Any]]) -> str:
    rows = []
    for t in items:
        spec = t["spec"]
        mapping = "; ".join(f"{m['remote']}->{','.join(m['local'])}" for m in spec.get("role_map") or [])
        rows.append([t["metadata"]["name"], "yes" if spec.get("enabled") else "no",
                     spec.get("web_proxy_addr", ""), spec.get("tunnel_addr", ""), mapping or "<none>"])
    return table(["Name", "Enabled", "Web Proxy", "Tunnel", "Role Map"], rows) + "\n"


async def auth_ls_trusted(c: Any) -> str:
    """The manual's "CA Keys for Trusted Clusters" section."""
    from teleport.ca.keys import fingerprint_sha256

    rows = []
    for rec in sorted(await c.call("GET", "/v1/trustedcas"),
                      key=lambda r: (r["cluster_name"], r["type"] != "user")):
        if rec.get("type") == "user" and rec.get("relation") == "root":
            if rec.get("source") == "static":
                allowed = ",".join(rec.get("allow_logins") or []) or "N/A"
            else:
                allowed = "role_map: " + ("; ".join(
                    f"{m['remote']}->{','.join(m['local'])}" for m in rec.get("role_map") or []) or "none")
            if not rec.get("enabled", True):
                allowed += " (disabled)"
        else:
            allowed = "N/A"
        for key in rec.get("checking_keys") or []:
            rows.append([rec["cluster_name"], rec["type"], fingerprint_sha256(key), allowed])
    return "\nCA Keys for Trusted Clusters:\n\n" + table(
        ["Cluster Name", "CA Type", "Fingerprint", "Allowed Logins"], rows)
