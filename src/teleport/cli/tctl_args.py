"""tctl's command line: the parser of every subcommand and its options (no behaviour here)."""

from __future__ import annotations

import argparse

from teleport import defaults


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
