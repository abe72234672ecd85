"""`tctl`: cluster administration, run on the auth server's host (it uses the admin identity the
auth service leaves in its data_dir)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from teleport import defaults
from teleport.cli.common import fmt_time, run_cli, table
from teleport.errors import BadParameter, NotFound

Handler = Callable[[Any, argparse.Namespace], Awaitable[int | None]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tctl",
        description="Administer a Teleport cluster: users, nodes, tokens and certificate authorities. "
        "Run it on the host of the auth service.",
    )
    parser.add_argument(
        "-c", "--config", help=f"Path to the teleport configuration file [{defaults.CONFIG_FILE}]"
    )
    parser.add_argument("-d", "--debug", action="store_true", help="Verbose logging to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    users = sub.add_parser("users", help="Manage users.", description="Manage user accounts.")
    us = users.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    add = us.add_parser(
        "add",
        help="Invite a new user: prints a signup URL.",
        description="Create an invite for a new user and print its signup URL "
        "(complete it with 'tsh signup URL'). Example: tctl users add joe joe,root",
    )
    add.add_argument("name", help="Teleport user name")
    add.add_argument("logins_pos", nargs="?", metavar="LOGINS", help="Allowed OS logins, comma-separated")
    add.add_argument("--logins", help="Allowed OS logins, comma-separated (default: the user name)")
    add.add_argument("--roles", help="Roles to give the user, comma-separated (default: access)")
    add.add_argument("--ttl", default="1h", help="How long the invite works (default 1h, max 48h)")
    us.add_parser("ls", help="List users.", description="List users and their allowed logins.")
    rm = us.add_parser("del", help="Delete a user.", description="Delete a user account.")
    rm.add_argument("name", help="User to delete")

    nodes = sub.add_parser("nodes", help="Manage nodes.", description="Invite and list nodes.")
    ns = nodes.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    nadd = ns.add_parser(
        "add",
        help="Create a join token and print the command for the new node.",
        description="Create a short-lived join token and print the 'teleport start' command that "
        "joins a new node with it.",
    )
    nadd.add_argument("--roles", default="node", help="Roles of the new server: node, proxy, auth (default node)")
    nadd.add_argument("--ttl", default="30m", help="Token lifetime (default 30m; can only be shortened)")
    ns.add_parser("ls", help="List online nodes.", description="List the nodes that are online.")

    tokens = sub.add_parser("tokens", help="Manage join and invite tokens.", description="List or delete tokens.")
    ts = tokens.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    ts.add_parser("ls", help="List tokens.", description="List join tokens (static ones never expire) and invites.")
    tdel = ts.add_parser("del", help="Delete a token.", description="Revoke a dynamic join token or an invite.")
    tdel.add_argument("token", help="The token to delete")

    auth = sub.add_parser("auth", help="Certificate authorities.", description="Export and inspect the cluster's CAs, sign certificates.")
    aus = auth.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    exp = aus.add_parser(
        "export",
        help="Print the CA public keys in OpenSSH formats.",
        description="Print the user CA as an authorized_keys line (cert-authority ...) and the host "
        "CA as a known_hosts line (@cert-authority ...).",
    )
    exp.add_argument("--type", choices=["user", "host"], help="Only this CA")
    aus.add_parser("ls", help="List CAs and their fingerprints.", description="List the cluster's CAs with SHA256 fingerprints.")
    sign = aus.add_parser(
        "sign",
        help="Write a key and certificate for automation.",
        description="Write a private key to FILE and its certificate to FILE-cert.pub: a user "
        "certificate (--user) or a host certificate for an OpenSSH server (--host).",
    )
    who = sign.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="Sign a user certificate for this Teleport user")
    who.add_argument("--host", help="Sign a host certificate for this host name (comma list: name,addr,...)")
    sign.add_argument("-o", "--out", required=True, help="Output file (FILE and FILE-cert.pub)")
    sign.add_argument("--ttl", default="", help="User certificate lifetime (default 23h, 1m..30h)")
    return parser


# connection -------------------------------------------------------------------------------
def connect(config_path: str | None) -> Any:
    """An AuthClient with the admin identity the local auth service wrote into data_dir."""
    from teleport.auth.client import AuthClient, client_ssl_context
    from teleport.cli.teleport import load_config
    from teleport.service.process import admin_identity_paths

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
    from teleport.durations import parse_duration
    from teleport.types.resources import split_csv

    if a.logins_pos and a.logins:
        raise BadParameter("give the logins either as an argument or with --logins, not both")
    logins = split_csv(a.logins_pos or a.logins) or [a.name]
    roles = split_csv(a.roles)
    inv = await c.create_invite(a.name, logins, roles, parse_duration(a.ttl), "")
    hours = (inv["expires"] - __import__("time").time()) / 3600
    print(f"Signup token has been created and is valid for {hours:.0f} hours. Share this URL with the user:")
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
    await c.delete_user(a.name)
    print(f"User '{a.name}' has been deleted")


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
    from teleport.service.process import admin_identity_paths
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
        [t["token"], ",".join(r.capitalize() for r in t["roles"]), fmt_time(t["expires"])]
        for t in await c.list_tokens()
    ]
    print(table(["Token", "Role", "Expiry Time (UTC)"], rows))


async def tokens_del(c: Any, a: argparse.Namespace) -> None:
    await c.delete_token(a.token)
    print(f"Token {a.token} has been deleted")


# auth -----------------------------------------------------------------------------------
async def auth_export(c: Any, a: argparse.Namespace) -> None:
    from teleport.ca.export import authorized_keys_line, known_hosts_line

    for ca in await c.get_authorities():
        kind, cluster = ca["spec"]["type"], ca["spec"]["cluster_name"]
        if kind == "tls" or (a.type and a.type != kind):
            continue
        for key in ca["spec"]["checking_keys"]:
            if kind == "user":
                print(authorized_keys_line(key, cluster))
            else:
                print(known_hosts_line(key, cluster, ["*"]))


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
    if getattr(args, "subcommand", None) is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 1
    table_: dict[tuple[str, str], Any] = {
        ("users", "add"): users_add,
        ("users", "ls"): users_ls,
        ("users", "del"): users_del,
        ("nodes", "add"): nodes_add,
        ("nodes", "ls"): nodes_ls,
        ("tokens", "ls"): tokens_ls,
        ("tokens", "del"): tokens_del,
        ("auth", "export"): auth_export,
        ("auth", "ls"): auth_ls,
        ("auth", "sign"): auth_sign,
    }
    handler = table_[(args.command, args.subcommand)]

    def go() -> int:
        async def inner() -> None:
            cfg, client = connect(args.config)
            async with client:
                if handler is nodes_add:
                    await handler(client, args, cfg)
                else:
                    await handler(client, args)

        asyncio.run(inner())
        return 0

    return run_cli(go)


if __name__ == "__main__":
    sys.exit(main())
