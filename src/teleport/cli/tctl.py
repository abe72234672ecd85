"""`tctl`: cluster administration, run on the auth server's host (it uses the admin identity the
auth service leaves in its data_dir)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from teleport.cli import tctl_trust
from teleport.cli.common import fmt_time, run_cli, table
from teleport.cli.tctl_args import build_parser
from teleport.cli.tctl_resources import (
    CONNECTOR_KINDS,
    GET_KINDS,
    RM_KINDS,
    events_table,
    parse_documents,
    parse_ref,
    render,
    token_resource,
)
from teleport.errors import BadParameter, NotFound
from teleport.types.names import api_path

Handler = Callable[[Any, argparse.Namespace], Awaitable[int | None]]
# connection -------------------------------------------------------------------------------
def connect(config_path: str | None) -> Any:
    """An AuthClient with the admin identity the local auth service wrote into data_dir."""
    from teleport.auth.client import AuthClient, client_ssl_context
    from teleport.cli.teleport import load_config
    from teleport.service.adminid import admin_identity_paths

    cfg = load_config(config_path)
    paths = admin_identity_paths(cfg.teleport.data_dir)
    if not os.path.exists(paths["cert"]):
        raise NotFound(
            f"no admin identity in {os.path.dirname(paths['cert'])}: tctl must run on the host of "
            "a running auth service, with the same configuration (use -c FILE)"
        )
    try:
        with open(paths["ca"], "rb") as f:
            ca = f.read()
        with open(paths["auth_addr"]) as f:
            addr = f.read().strip()
    except PermissionError:
        raise BadParameter(
            f"cannot read the admin identity in {cfg.teleport.data_dir}: run tctl as the user "
            "that runs teleport (often root)"
        ) from None
    return cfg, AuthClient([addr], client_ssl_context(ca, paths["cert"], paths["key"]))


# users ----------------------------------------------------------------------------------
async def users_add(c: Any, a: argparse.Namespace) -> None:
    import time

    from teleport.cli.common import human_duration
    from teleport.durations import parse_duration
    from teleport.types.resources import split_csv

    if a.logins_pos and a.logins:
        raise BadParameter("give the logins either as an argument or with --logins, not both")
    logins = split_csv(a.logins_pos or a.logins) or [a.name]
    roles = split_csv(a.roles)
    inv = await c.create_invite(a.name, logins, roles, parse_duration(a.ttl), "")
    left = inv["expires"] - time.time()
    print(f"Signup token has been created and is valid for {human_duration(left)}. Share this URL "
          "with the user:")
    print(inv["url"])
    print()
    print("The user completes the invite from a terminal with: tsh [--insecure] signup <URL>")


async def users_ls(c: Any, a: argparse.Namespace) -> None:
    rows = []
    for u in sorted(await c.list_users(), key=lambda u: u["metadata"]["name"]):
        logins = ",".join((u["spec"].get("traits") or {}).get("logins") or [])
        rows.append([u["metadata"]["name"], logins])
    print(table(["User", "Allowed to Login as"], rows))


async def users_del(c: Any, a: argparse.Namespace) -> None:
    removed = await c.delete_user(a.name)
    if removed == "invite":
        print(f"The pending invite for '{a.name}' has been revoked")
    elif removed == "user":
        print(f"User '{a.name}' has been deleted")
    else:
        print(f"User '{a.name}' has been deleted and the pending invite revoked")


async def users_update(c: Any, a: argparse.Namespace) -> None:
    from teleport.types.resources import split_csv

    body: dict[str, Any] = {}
    if a.set_roles is not None:
        roles = split_csv(a.set_roles)
        if not roles:
            raise BadParameter("--set-roles needs at least one role name")
        body["roles"] = roles
    if a.set_logins is not None or a.set_trait:
        users = [u for u in await c.list_users() if u["metadata"]["name"] == a.name]
        if not users:
            raise NotFound(f"user {a.name!r} not found")
        traits = {k: list(v) for k, v in (users[0]["spec"].get("traits") or {}).items()}
        if a.set_logins is not None:
            traits["logins"] = split_csv(a.set_logins)
        for item in a.set_trait:
            key, sep, values = item.partition("=")
            if not sep or not key.strip():
                raise BadParameter(f"bad --set-trait {item!r}: use NAME=value1,value2")
            traits[key.strip()] = split_csv(values)
        body["traits"] = traits
    if not body:
        raise BadParameter("nothing to update: give --set-roles, --set-logins or --set-trait")
    user = await c.call("PUT", api_path("/v1/users/{user}", user=a.name), body)
    roles_text = ",".join(user["spec"].get("roles") or [])
    logins_text = ",".join((user["spec"].get("traits") or {}).get("logins") or [])
    print(f"User {a.name!r} has been updated (roles: {roles_text}; logins: {logins_text})")


# resources ------------------------------------------------------------------------------
async def create(c: Any, a: argparse.Namespace) -> None:
    if a.file == "-":
        text = sys.stdin.read()
        where = "stdin"
    else:
        try:
            with open(a.file) as f:
                text = f.read()
        except OSError as exc:
            raise BadParameter(f"cannot read {a.file}: {exc.strerror or exc}") from None
        where = a.file
    docs = parse_documents(text, where)
    for doc in docs:
        kind = doc["kind"]
        name = doc["metadata"]["name"]
        if kind in CONNECTOR_KINDS:
            res = await c.call("POST", "/v1/connectors", {"connector": doc, "upsert": a.force})
            print(f"{kind} connector {name!r} has been {'created' if res['created'] else 'updated'}")
            continue
        if kind == "trusted_cluster":
            created = await tctl_trust.create(c, doc, a.force)
        else:
            path = "/v1/roles" if kind == "role" else "/v1/users"
            created = (await c.call("POST", path, {kind: doc, "upsert": a.force}))["created"]
        print(f"{kind} {name!r} has been {'created' if created else 'updated'}")


async def get(c: Any, a: argparse.Namespace) -> None:
    kind, name = parse_ref(a.resource, GET_KINDS)
    items: list[dict[str, Any]]
    if kind == "role":
        items = [await c.call("GET", api_path("/v1/roles/{role}", role=name))] if name else await c.call("GET", "/v1/roles")
    elif kind == "user":
        items = [await c.call("GET", api_path("/v1/users/{user}", user=name))] if name else await c.list_users()
        items.sort(key=lambda u: u["metadata"]["name"])
    elif kind in ("connector", *CONNECTOR_KINDS):
        items = [i for i in await c.call("GET", "/v1/connectors")
                 if kind == "connector" or i["kind"] == kind]
        if name:
            items = [i for i in items if i["metadata"]["name"] == name]
            if not items:
                raise NotFound(f"{kind} {name!r} not found ('tctl get connectors' lists them)")
    elif kind == "trusted_cluster":
        items = await tctl_trust.get_items(c, name)
    elif kind == "node":
        items = await c.list_nodes()
        if name:
            items = [n for n in items if name in (n["metadata"]["name"], n["spec"].get("hostname"))]
            if not items:
                raise NotFound(f"node {name!r} not found (offline?)")
        items.sort(key=lambda n: (n["spec"].get("hostname", ""), n["metadata"]["name"]))
    else:
        items = [token_resource(t) for t in await c.list_tokens()]
        if name:
            items = [t for t in items if t["metadata"]["name"] == name]
            if not items:
                raise NotFound(f"token {name[:4]}... not found")
    print(render(kind, items, a.format, single=bool(name)), end="")


async def rm(c: Any, a: argparse.Namespace) -> None:
    kind, name = parse_ref(a.resource, RM_KINDS)
    if not name:
        raise BadParameter(f"name the {kind} to delete: tctl rm {kind}/NAME")
    if kind == "role":
        await c.call("DELETE", api_path("/v1/roles/{role}", role=name))
    elif kind == "user":
        await c.delete_user(name)
    elif kind in CONNECTOR_KINDS:
        from urllib.parse import quote

        from teleport.auth.sso.connectors import check_connector_name

        await c.call("DELETE", f"/v1/connectors/{kind}/{quote(check_connector_name(name), safe='')}")
    elif kind == "trusted_cluster":
        await tctl_trust.remove(c, name)
    else:
        await c.delete_token(name)
    print(f"{kind} {name!r} has been deleted")


# events ---------------------------------------------------------------------------------
async def events_ls(c: Any, a: argparse.Namespace) -> None:
    import json
    import time

    from teleport.durations import parse_duration

    since = time.time() - parse_duration(a.since)
    events = await c.search_events(since=since, type=a.type, user=a.user, sid=a.sid, limit=a.limit or None)
    if a.format == "json":
        print(json.dumps(events, indent=2))
        return
    print(events_table(events))


# nodes ----------------------------------------------------------------------------------
def auth_public_addr(cfg: Any) -> str:
    from teleport.config.addr import HostPort
    from teleport.service.process import public_host

    listen = cfg.auth_service.listen_addr
    host = listen.host if listen.host not in ("", "0.0.0.0", "::") else public_host(cfg)
    return str(HostPort(host, listen.port))


async def nodes_add(c: Any, a: argparse.Namespace, cfg: Any) -> None:
    from teleport.ca.tlsca import ca_pin
    from teleport.durations import format_duration, parse_duration
    from teleport.service.adminid import admin_identity_paths
    from teleport.types.resources import split_csv

    ttl = parse_duration(a.ttl)
    tok = await c.create_token(split_csv(a.roles), ttl)
    with open(admin_identity_paths(cfg.teleport.data_dir)["ca"], "rb") as f:
        pin = ca_pin(f.read())
    roles = ",".join(tok["roles"])
    print(f"The invite token: {tok['token']}")
    print(f"This token will expire in {format_duration(ttl)}.")
    print()
    print("Run this on the new node to join the cluster:")
    print()
    print(
        f"> teleport start \\\n   --roles={roles} \\\n   --token={tok['token']} \\\n"
        f"   --ca-pin={pin} \\\n   --auth-server={auth_public_addr(cfg)}"
    )
    print()
    print("Please note:")
    print(f"  - This invitation token will expire in {format_duration(ttl)}")
    print(f"  - {auth_public_addr(cfg)} must be reachable from the new node")


async def nodes_ls(c: Any, a: argparse.Namespace) -> None:
    rows = []
    for n in sorted(await c.list_nodes(), key=lambda n: n["spec"].get("hostname", "")):
        labels = dict(n["metadata"].get("labels") or {})
        for name, cmd in (n["spec"].get("cmd_labels") or {}).items():
            labels[name] = str(cmd.get("result", ""))
        text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        rows.append([n["spec"].get("hostname", ""), n["metadata"]["name"], n["spec"].get("addr", ""), text])
    print(table(["Node Name", "Node ID", "Address", "Labels"], rows))


# tokens ---------------------------------------------------------------------------------
async def tokens_ls(c: Any, a: argparse.Namespace) -> None:
    rows = [
        [t["token"], ",".join(r.capitalize() for r in t["roles"]), fmt_time(t["expires"]),
         f"invite for {t['user']}" if t.get("user") else ""]
        for t in await c.list_tokens()
    ]
    print(table(["Token", "Role", "Expiry Time (UTC)", "Description"], rows))
    if any(t[3] for t in rows):
        print("\nRevoke an invite with 'tctl tokens del ID' or 'tctl users del USER'.")


async def tokens_del(c: Any, a: argparse.Namespace) -> None:
    await c.delete_token(a.token)
    print(f"Token {a.token} has been deleted")


# auth -----------------------------------------------------------------------------------
async def auth_export(c: Any, a: argparse.Namespace) -> None:
    from teleport.ca.export import export_lines

    cas = [
        (ca["spec"]["type"], ca["spec"]["cluster_name"], key)
        for ca in await c.get_authorities()
        for key in ca["spec"]["checking_keys"]
    ]
    for line in export_lines(cas, a.type, a.format, a.compat):
        print(line)


async def auth_ls(c: Any, a: argparse.Namespace) -> None:
    from teleport.ca.keys import fingerprint_sha256

    cas = await c.get_authorities()
    cluster = cas[0]["spec"]["cluster_name"] if cas else ""
    rows = []
    for ca in cas:
        if ca["spec"]["type"] == "tls":
            continue
        for key in ca["spec"]["checking_keys"]:
            rows.append([ca["spec"]["type"], fingerprint_sha256(key)])
    print(f"CA keys for the local cluster {cluster}:\n")
    print(table(["CA Type", "Fingerprint"], rows))
    print(await tctl_trust.auth_ls_trusted(c))


async def auth_sign(c: Any, a: argparse.Namespace) -> None:
    from teleport.durations import parse_duration
    from teleport.files import write_public, write_secret
    from teleport.types.resources import split_csv

    if a.user:
        ttl = parse_duration(a.ttl) if a.ttl else None
        resp = await c.sign_user(a.user, ttl)
        key, cert = resp["private_key"], resp["cert"]
    else:
        names = split_csv(a.host)
        resp = await c.sign_host(names[0], names[1:])
        key, cert = resp["private_key"], resp["cert"]
    write_secret(a.out, key)
    write_public(a.out + "-cert.pub", cert.strip() + "\n")
    write_public(a.out + ".pub", _pub_from_cert(cert))
    print(f"The credentials have been written to {a.out}, {a.out}-cert.pub")


async def auth_rotate(c: Any, a: argparse.Namespace) -> None:
    from teleport.durations import parse_duration

    if a.manual and not a.phase:
        raise BadParameter("--manual needs --phase=init|update_clients|update_servers|standby|rollback")
    if a.phase and not a.manual:
        raise BadParameter("--phase moves a manual rotation: add --manual")
    body: dict[str, Any] = {"type": a.type, "mode": "manual" if a.manual else "auto", "phase": a.phase}
    if a.grace_period:
        body["grace_period"] = parse_duration(a.grace_period)
    for r in await c.call("POST", "/v1/authorities/rotate", body):
        print(f"{r['type']} CA: rotation phase is now {r['rotation']['phase']}")


async def status(c: Any, a: argparse.Namespace) -> None:
    import time

    from teleport.auth.rotation import status_line

    cas = await c.get_authorities()
    cluster = cas[0]["spec"]["cluster_name"] if cas else ""
    print(f"Cluster  {cluster}")
    for ca in cas:
        if ca["spec"]["type"] == "tls":
            continue
        print(status_line(ca["spec"]["type"], ca["spec"], time.time()))


def _pub_from_cert(cert: str) -> str:
    from teleport.ca.sshcert import parse_cert

    return parse_cert(cert).public_key + "\n"


# dispatch -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    if args.command == "version":
        from teleport import __version__

        print(f"Teleport v{__version__} tctl (Python {sys.version.split()[0]})")
        return 0
    if getattr(args, "subcommand", None) is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 1
    table_: dict[tuple[str, str], Any] = {
        ("users", "add"): users_add,
        ("users", "ls"): users_ls,
        ("users", "del"): users_del,
        ("users", "update"): users_update,
        ("create", ""): create,
        ("get", ""): get,
        ("rm", ""): rm,
        ("events", "ls"): events_ls,
        ("nodes", "add"): nodes_add,
        ("nodes", "ls"): nodes_ls,
        ("tokens", "ls"): tokens_ls,
        ("tokens", "add"): tctl_trust.tokens_add,
        ("tokens", "del"): tokens_del,
        ("auth", "export"): auth_export,
        ("auth", "ls"): auth_ls,
        ("auth", "sign"): auth_sign,
        ("auth", "rotate"): auth_rotate,
        ("status", ""): status,
    }
    handler = table_[(args.command, args.subcommand)]

    def go() -> int:
        async def inner() -> None:
            cfg, client = connect(args.config)
            async with client:
                if handler in (nodes_add, tctl_trust.tokens_add):
                    await handler(client, args, cfg)
                else:
                    await handler(client, args)

        asyncio.run(inner())
        return 0

    return run_cli(go)


if __name__ == "__main__":
    sys.exit(main())
