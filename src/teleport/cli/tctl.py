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
from teleport.cli import tctl_trust
from teleport.cli.common import fmt_time, run_cli, table
from teleport.errors import BadParameter, NotFound
from teleport.types.names import api_path

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
    sub.add_parser("version", help="Print the version.", description="Print tctl's version.")

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
    upd = us.add_parser(
        "update",
        help="Change a user's roles or traits.",
        description="Change a user's roles or traits; they apply from the user's next login "
        "(node access checks use the current roles at once). Example: "
        "tctl users update joe --set-roles=access,auditor",
    )
    upd.add_argument("name", help="Teleport user name")
    upd.add_argument("--set-roles", help="Replace the user's roles (comma-separated, must exist)")
    upd.add_argument("--set-logins", help="Replace the user's logins trait (comma-separated)")
    upd.add_argument(
        "--set-trait",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="Replace one trait (for {{external.NAME}} in roles); repeatable; NAME= clears it",
    )
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
    tadd = ts.add_parser("add", help="Create a join token.", description="Create a join token: "
                         "--type=trusted_cluster for a leaf cluster's trusted_cluster resource, or "
                         "node/proxy/auth for a host (as 'tctl nodes add').")
    tadd.add_argument("--type", required=True, help="trusted_cluster, or host roles node,proxy,auth")
    tadd.add_argument("--ttl", default="30m", help="Token lifetime (default 30m; can only be shortened)")
    tdel = ts.add_parser("del", help="Delete a token.", description="Revoke a dynamic join token or an invite.")
    tdel.add_argument("token", help="The token to delete")

    create = sub.add_parser(
        "create",
        help="Create resources from a YAML or JSON file.",
        description="Create the resources (kinds: role, user, github, oidc) in FILE ('-' for stdin); documents "
        "are separated by '---'. With -f, existing resources are replaced.",
    )
    create.add_argument("file", help="Resource file (YAML or JSON), or - for stdin")
    create.add_argument("-f", "--force", action="store_true", help="Replace resources that exist")
    create.set_defaults(subcommand="")
    get = sub.add_parser(
        "get",
        help="Print resources.",
        description="Print resources: roles, role/NAME, users, user/NAME, nodes, node/NAME, tokens, "
        "connectors, github/NAME, oidc/NAME (client secrets are never shown), trusted_clusters, "
        "trusted_cluster/NAME. "
        "'--format=yaml' output can be edited and fed back to 'tctl create -f'.",
    )
    get.add_argument("resource", help="roles | role/NAME | users | user/NAME | nodes | node/NAME | tokens | "
                     "connectors | github/NAME | oidc/NAME | trusted_clusters | trusted_cluster/NAME")
    get.add_argument("--format", choices=["text", "yaml", "json"], default="text", help="Output format (default text)")
    get.set_defaults(subcommand="")
    rm = sub.add_parser(
        "rm",
        help="Delete a resource.",
        description="Delete a resource: role/NAME (refused while users hold it), user/NAME, token/TOKEN.",
    )
    rm.add_argument("resource", help="role/NAME | user/NAME | token/TOKEN | github/NAME | oidc/NAME | "
                    "trusted_cluster/NAME")
    rm.set_defaults(subcommand="")

    events = sub.add_parser("events", help="Search the audit log.", description="Search the audit log.")
    es = events.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    els = es.add_parser(
        "ls",
        help="List audit events.",
        description="List audit events, oldest first. Example: tctl events ls --since=1h --type=exec",
    )
    els.add_argument("--since", default="24h", help="How far back to search (default 24h)")
    els.add_argument("--type", default="", help="Only these event types, comma-separated (e.g. session.start,exec)")
    els.add_argument("--user", default="", help="Only events of this Teleport user")
    els.add_argument("--sid", default="", help="Only events of this session")
    els.add_argument("--limit", type=int, default=0, help="At most this many events (0 = no limit)")
    els.add_argument("--format", choices=["text", "json"], default="text", help="Output format (default text)")

    auth = sub.add_parser("auth", help="Certificate authorities.", description="Export and inspect the cluster's CAs, sign certificates.")
    aus = auth.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    exp = aus.add_parser(
        "export",
        help="Print the CA public keys in OpenSSH formats.",
        description="Print the user CA as an authorized_keys line (cert-authority ...) and the host "
        "CA as a known_hosts line (@cert-authority ...). For an OpenSSH server's "
        "TrustedUserCAKeys file use: tctl auth export --type=user --format=openssh-ca "
        "> /etc/ssh/teleport_user_ca.pub",
    )
    exp.add_argument("--type", choices=["user", "host"], help="Only this CA")
    exp.add_argument(
        "--format", choices=["openssh", "openssh-ca"], default="openssh",
        help="openssh (default): authorized_keys / known_hosts lines; openssh-ca: the bare CA "
        "keys, one per line, as sshd's TrustedUserCAKeys file takes them",
    )
    exp.add_argument(
        "--compat", choices=["1.0"], default=None,
        help="1.0: export the user CA in known_hosts format too, as Teleport 1.0 did",
    )
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
    rot = aus.add_parser(
        "rotate",
        help="Rotate a certificate authority.",
        description="Rotate the user and/or host CA. Without --manual the phases (init, "
        "update_clients, update_servers, standby) follow one another over the grace period; with "
        "--manual, --phase moves one step (rollback returns to the old keys from any phase but "
        "standby). 'tctl status' shows where a rotation is.",
    )
    rot.add_argument("--type", choices=["user", "host", "all"], default="all", help="Which CA (default all)")
    rot.add_argument("--grace-period", default="", help="Auto mode: how long the old keys stay trusted (default 30h; 0 = at once)")
    rot.add_argument("--manual", action="store_true", help="Move one phase instead of rotating automatically")
    rot.add_argument("--phase", default="", help="Manual mode: init, update_clients, update_servers, standby or rollback")
    status = sub.add_parser("status", help="Cluster status and CA rotations.", description="Show the cluster name and each CA's rotation state, phase and when it moves on.")
    status.set_defaults(subcommand="")
    return parser


# resource files and output (pure helpers) -------------------------------------------------
CREATE_KINDS = ("role", "user", "github", "oidc", "trusted_cluster")
GET_KINDS = ("role", "user", "node", "token", "connector", "github", "oidc", "trusted_cluster")
RM_KINDS = ("role", "user", "token", "github", "oidc", "trusted_cluster")
CONNECTOR_KINDS = ("github", "oidc")


def parse_documents(text: str, where: str) -> list[dict[str, Any]]:
    """The resources in a YAML/JSON text (several documents separated by '---', or JSON lists):
    each checked to be a mapping of a kind tctl can create, with a metadata.name."""
    import yaml

    try:
        raw = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise BadParameter(f"{where}: not valid YAML or JSON: {exc}") from None
    docs: list[Any] = []
    for d in raw:
        docs.extend(d if isinstance(d, list) else [d])
    if not docs:
        raise BadParameter(f"{where}: no resources found (expected kind: role or kind: user documents)")
    out = []
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            raise BadParameter(f"{where}: document {i} is not a mapping (kind, version, metadata, spec)")
        kind = doc.get("kind")
        if kind not in CREATE_KINDS:
            raise BadParameter(
                f"{where}: document {i}: cannot create kind {kind!r}; tctl create accepts "
                f"{', '.join(CREATE_KINDS)} (tokens: 'tctl nodes add'; users: also 'tctl users add')"
            )
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise BadParameter(f"{where}: document {i} ({kind}): metadata.name is missing")
        out.append(doc)
    return out


def parse_ref(ref: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    """'roles' -> ('role', ''), 'role/dev' -> ('role', 'dev'); plural and singular accepted."""
    kind, _, name = ref.partition("/")
    kind = kind.strip().lower()
    if kind.endswith("s") and kind[:-1] in kinds:
        kind = kind[:-1]
    if kind not in kinds:
        raise BadParameter(
            f"unknown resource {ref!r}: expected one of "
            + ", ".join(f"{k}s, {k}/NAME" for k in kinds)
        )
    return kind, name.strip()


def token_resource(tok: dict[str, Any]) -> dict[str, Any]:
    """A token listing entry in resource form (kind token)."""
    from datetime import UTC, datetime

    from teleport.types.resources import format_time

    meta: dict[str, Any] = {"name": tok["token"]}
    if tok.get("expires"):
        meta["expires"] = format_time(datetime.fromtimestamp(tok["expires"], UTC))
    return {"kind": "token", "version": "v2", "metadata": meta,
            "spec": {"roles": list(tok["roles"]), "static": bool(tok.get("static"))}}


def _labels_text(selector: dict[str, Any]) -> str:
    if not selector:
        return "<none>"
    if set(selector) == {"*"} and selector["*"] in ("*", ["*"]):
        return "<all nodes>"
    parts = []
    for key, value in sorted(selector.items()):
        values = value if isinstance(value, list) else [value]
        parts.append(f"{key}={'|'.join(str(v) for v in values)}")
    return ",".join(parts)


def _rules_text(rules: list[dict[str, Any]]) -> str:
    pairs = sorted({f"{r}:{v}" for rule in rules for r in rule["resources"] for v in rule["verbs"]})
    return ",".join(pairs) or "<none>"


def roles_table(roles: list[dict[str, Any]]) -> str:
    """`tctl get roles` text: the reference's columns, deny conditions shown after 'deny:'."""
    rows = []
    for r in roles:
        allow, deny = r["spec"]["allow"], r["spec"]["deny"]
        logins = ",".join(allow.get("logins") or [])
        labels = _labels_text(allow.get("node_labels") or {})
        rules = _rules_text(allow.get("rules") or [])
        if deny.get("logins"):
            logins += f" deny:{','.join(deny['logins'])}"
        if deny.get("node_labels"):
            labels += f" deny:{_labels_text(deny['node_labels'])}"
        if deny.get("rules"):
            rules += f" deny:{_rules_text(deny['rules'])}"
        rows.append([r["metadata"]["name"], logins.strip(), labels, rules])
    return table(["Role", "Allowed to login as", "Node Labels", "Access to resources"], rows)


def render(kind: str, items: list[dict[str, Any]], fmt: str, single: bool = False) -> str:
    """Resources as text (a table), YAML ('---' between documents; feeds 'tctl create -f') or
    JSON (a list, or one object for kind/NAME)."""
    import json

    import yaml

    if fmt == "json":
        return json.dumps(items[0] if single and items else items, indent=2) + "\n"
    if fmt == "yaml":
        return "---\n".join(yaml.safe_dump(i, sort_keys=False, default_flow_style=False) for i in items)
    if kind == "role":
        return roles_table(items) + "\n"
    if kind == "user":
        rows = [
            [u["metadata"]["name"], ",".join(u["spec"].get("roles") or []),
             ",".join((u["spec"].get("traits") or {}).get("logins") or [])]
            for u in items
        ]
        return table(["User", "Roles", "Allowed to login as"], rows) + "\n"
    if kind in ("connector", *CONNECTOR_KINDS):
        rows = [[i["kind"], i["metadata"]["name"], i["spec"].get("display") or "",
                 i["spec"].get("issuer_url") or i["spec"].get("endpoint_url") or "github.com"]
                for i in items]
        return table(["Kind", "Name", "Display", "Provider"], rows) + "\n"
    if kind == "trusted_cluster":
        return tctl_trust.render_table(items)
    if kind == "node":
        rows = []
        for n in items:
            labels = dict(n["metadata"].get("labels") or {})
            for name, cmd in (n["spec"].get("cmd_labels") or {}).items():
                labels[name] = str(cmd.get("result", "")).strip()
            text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            rows.append([n["spec"].get("hostname", ""), n["metadata"]["name"], n["spec"].get("addr", ""), text])
        return table(["Node Name", "Node ID", "Address", "Labels"], rows) + "\n"
    token_rows = []
    for t in items:
        exp = t["metadata"].get("expires")
        token_rows.append([t["metadata"]["name"], ",".join(r.capitalize() for r in t["spec"]["roles"]),
                           "never" if not exp else exp.replace("T", " ").replace("Z", " UTC")])
    return table(["Token", "Role", "Expiry Time (UTC)"], token_rows) + "\n"


def _event_details(ev: dict[str, Any]) -> str:
    kind = ev.get("event", "")
    if kind == "user.login":
        ok = ev.get("success")
        return f"{ev.get('method', '')} {'success' if ok else 'failure: ' + str(ev.get('error', ''))}".strip()
    if kind == "exec":
        return f"{ev.get('command', '')!r} exit={ev.get('exitCode', '')}"
    if kind == "scp":
        return f"{ev.get('action', '')} {ev.get('path', '')}"
    if kind == "port":
        return str(ev.get("addr", ""))
    if kind == "auth":
        return str(ev.get("error", ""))
    if kind in ("resize", "session.start"):
        return f"size={ev.get('size', '')}"
    if kind == "session.end":
        return f"participants={','.join(ev.get('participants') or [])}"
    return str(ev.get("addr.remote", ""))


def events_table(events: list[dict[str, Any]]) -> str:
    """`tctl events ls` text: time, event (code), user, login, node/session, short details."""
    rows = []
    for ev in events:
        where = ev.get("server_hostname") or ev.get("server_id") or ""
        sid = ev.get("sid") or ""
        node = f"{where}/{sid[:8]}" if sid else where
        details = _event_details(ev)
        if len(details) > 60:
            details = details[:57] + "..."
        rows.append([str(ev.get("time", "")), f"{ev.get('event', '')} ({ev.get('code', '')})",
                     str(ev.get("user", "")), str(ev.get("login", "")), node, details])
    return table(["Time", "Event", "User", "Login", "Node/Session", "Details"], rows)


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
