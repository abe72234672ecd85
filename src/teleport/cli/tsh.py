"""`tsh`: the user's client: login | logout | status | signup | ssh | scp | ls | config | agent |
recordings | play | sessions | join | bench | proxy ssh.

Kept light on imports: `tsh status` runs at every prompt of some users' shells.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from teleport import defaults
from teleport.cli.common import fmt_remaining, run_cli
from teleport.errors import AccessDenied, BadParameter, ConnectionProblem, NotAuthenticated


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("--proxy", default=d, help="Proxy address HOST[:PORT] (web port, default 3080)")
    p.add_argument("--user", default=d, help="Teleport user name (default: your OS user or the profile's)")
    p.add_argument("--ttl", default=d, type=int, help="Certificate lifetime in minutes (default 1380, 1..1800)")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="Do not verify the proxy's HTTPS certificate (test clusters with self-signed certs only)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsh",
        description="Teleport's SSH client: log in to a cluster for a short-lived certificate, "
        "then reach its nodes.",
    )
    _common(parser, suppress=False)
    parser.add_argument("--cluster", dest="global_cluster", default="",
                        help="The cluster for ssh, scp and ls (a trusted leaf; 'tsh clusters' lists them)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, desc: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=desc)
        _common(p, suppress=True)
        return p

    lp = add(
        "login",
        "Log in to a cluster and receive a certificate.",
        "Ask for your password and one-time code (or sign in with the cluster's GitHub or OIDC "
        "connector in a browser), and store a short-lived certificate in ~/.tsh (and in your "
        "ssh-agent when one runs).",
    )
    lp.add_argument("--auth", default="", help="How to log in: 'local' (password), a connector's "
                    "name, or 'github'/'oidc' (default: the cluster's authentication type)")
    lp.add_argument("--browser", default="default", choices=["default", "none"],
                    help="'none': do not open a browser for single sign-on, only print the URL")
    add("logout", "Delete the certificate and keys.", "Remove the current profile's keys from ~/.tsh and the ssh-agent.")
    add("status", "Show who you are logged in as.", "Show the current profile: user, logins, roles and expiry.")
    sp = add(
        "signup",
        "Complete an invite from the terminal.",
        "Complete an invite URL from 'tctl users add': choose a password and enrol an "
        "authenticator app for one-time codes.",
    )
    sp.add_argument("url", help="The invite URL, https://PROXY:3080/web/invite/TOKEN")

    ssh = add(
        "ssh",
        "Run a shell or a command on a node.",
        "Connect to a node through the proxy. The target is [user@]host (a node name, ID or "
        "address) or [user@]key=value to run the command on every node with that label.",
    )
    ssh.add_argument("-p", "--port", type=int, default=defaults.NODE_SSH_PORT,
                     help=f"Node SSH port (default {defaults.NODE_SSH_PORT})")
    ssh.add_argument("-l", "--login", default=None, help="Remote login (default: your OS user name)")
    tty = ssh.add_mutually_exclusive_group()
    tty.add_argument("-t", dest="tty", action="store_const", const=True, default=None,
                     help="Force a terminal (PTY) even for a command")
    tty.add_argument("-T", dest="tty", action="store_const", const=False, help="Never allocate a terminal")
    ssh.add_argument("-L", dest="forward", action="append", default=[], metavar="[BIND:]PORT:HOST:HOSTPORT",
                     help="Forward a local port to HOST:HOSTPORT as seen from the node")
    ssh.add_argument("-R", dest="remote_forward", action="append", default=[],
                     metavar="[BIND:]PORT:HOST:HOSTPORT",
                     help="Forward a port on the node to HOST:HOSTPORT as seen from this machine "
                     "(if your role's port_forwarding allows it)")
    ssh.add_argument("-D", dest="dynamic_forward", action="append", default=[], metavar="[BIND:]PORT",
                     help="A local SOCKS proxy whose connections leave from the node "
                     "(if your role's port_forwarding allows it)")
    ssh.add_argument("-N", dest="no_command", action="store_true",
                     help="Run no command: only forward ports (until Ctrl-C)")
    ssh.add_argument("-f", dest="background", action="store_true",
                     help="Go to the background once connected (with -N: keep forwarding)")
    ssh.add_argument("-A", dest="agent", action="store_true", help="Forward your SSH agent to the node")
    ssh.add_argument("-i", dest="identity", default=None, metavar="FILE",
                     help="Use this key and its certificate FILE-cert.pub (e.g. from 'tctl auth "
                     "sign --user') instead of the profile's")
    ssh.add_argument("-e", dest="escape_char", default=defaults.ESCAPE_CHAR, metavar="CHAR",
                     help="Escape character for ~. ~? ~~ (default ~; 'none' turns escapes off)")
    ssh.add_argument("--enable-escape-sequences", dest="escapes", default="true",
                     choices=["true", "false"],
                     help="Recognise ~. (disconnect), ~? (help), ~~ at the start of a line "
                     "(default true)")
    ssh.add_argument("--cluster", default="", help="The cluster of the node (default: your login's cluster)")
    ssh.add_argument("destination", nargs="?", help="[user@]host or [user@]key=value")
    ssh.add_argument("remote_command", nargs=argparse.REMAINDER,
                     help="Command to run (optional; default: an interactive shell)")

    scp = add(
        "scp",
        "Copy files to or from nodes.",
        "Copy with SFTP through the proxy; one side is [user@]host:path.",
    )
    scp.add_argument("-r", "--recursive", action="store_true", help="Copy directories recursively")
    scp.add_argument("-P", "--port", type=int, default=3022, help="Node SSH port (default 3022)")
    scp.add_argument("--cluster", default="", help="The cluster of the node")
    scp.add_argument("-q", "--quiet", action="store_true", help="No progress bar")
    scp.add_argument("paths", nargs="+", metavar="SRC... DST")

    ls = add("ls", "List the cluster's nodes.", "List online nodes, optionally only those with all the given labels.")
    ls.add_argument("labels", nargs="*", metavar="key=value", help="Only nodes with these labels")
    ls.add_argument("--format", choices=["text", "json", "yaml"], default="text", help="Output format")
    ls.add_argument("--cluster", default="", help="The cluster whose nodes to list (default: your login's cluster)")

    add("clusters", "List the clusters.", "The cluster you are logged in to and its trusted (leaf) clusters, with their status (online while their tunnel is up).")

    rec = add("recordings", "List recorded sessions.", "Recorded sessions, from the audit log.")
    rec_sub = rec.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    rls = rec_sub.add_parser("ls", help="List recorded sessions.",
                             description="List recorded sessions: ID, user, login, node, start, duration.")
    _common(rls, suppress=True)
    rls.add_argument("--format", choices=["text", "json"], default="text", help="Output format")

    play = add("play", "Replay a recorded session.",
               "Replay a recorded session in this terminal with its recorded timing (pauses longer "
               "than 2 s are shortened), or print it as an asciicast v2 file.")
    play.add_argument("sid", metavar="SID", help="Session ID (see 'tsh recordings ls')")
    play.add_argument("--cluster", default="", help="The (leaf) cluster the session was recorded in")
    play.add_argument("--speed", default="1", help="Playback speed: 2 = twice as fast (default 1)")
    play.add_argument("--format", choices=["text", "cast"], default="text",
                      help="text: replay in the terminal; cast: write asciicast v2 to stdout "
                      "(for asciinema play)")

    sess = add("sessions", "List active sessions.", "Active interactive sessions that can be joined.")
    sess_sub = sess.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    sls = sess_sub.add_parser("ls", help="List active sessions.",
                              description="List active sessions: ID, node, login, participants, created.")
    _common(sls, suppress=True)
    sls.add_argument("--format", choices=["text", "json"], default="text", help="Output format")

    join = add("join", "Join a live session.",
               "Join a live interactive session: see its output and type into it. Exits when the "
               "session ends.")
    join.add_argument("sid", metavar="SID", help="Session ID (see 'tsh sessions ls')")
    join.add_argument("-p", "--port", type=int, default=3022, help=argparse.SUPPRESS)

    bench = add("bench", "Measure session latency under load.",
                "Open-loop load generator: start RATE sessions per second for DURATION, each a "
                "connection through the proxy and a command on the node as 'tsh ssh' makes, and "
                "print latency percentiles timed from each session's scheduled start (so a slow "
                "cluster cannot hide by slowing the schedule down).")
    bench.add_argument("--rate", type=float, default=defaults.BENCH_RATE,
                       help=f"Sessions started per second (default {defaults.BENCH_RATE:g})")
    bench.add_argument("--duration", default=defaults.BENCH_DURATION,
                       help=f"How long to start sessions, e.g. 30s or 2m (default {defaults.BENCH_DURATION})")
    bench.add_argument("--interactive", action="store_true",
                       help="Type the command into an interactive shell with a terminal instead of "
                       "running it as an exec request")
    bench.add_argument("--export", metavar="FILE",
                       help="Also write every session (due_s,latency_ms,ok,error) to FILE as CSV")
    bench.add_argument("-p", "--port", type=int, default=defaults.NODE_SSH_PORT,
                       help=f"Node SSH port (default {defaults.NODE_SSH_PORT})")
    bench.add_argument("--cluster", default="", help="The cluster of the node")
    bench.add_argument("destination", help="[user@]host")
    bench.add_argument("remote_command", nargs=argparse.REMAINDER, help="The command each session runs")

    px = add("proxy", "Relay a connection through the proxy.",
             "Subcommands that carry a connection to a node through the proxy.")
    px_sub = px.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    pssh = px_sub.add_parser(
        "ssh", help="Relay stdin/stdout to a node's SSH port (for OpenSSH's ProxyCommand).",
        description="Carry stdin/stdout to [user@]host[:port] through the proxy, authenticated "
        "by your tsh certificate, like 'ssh -W' through a jump host: "
        "ssh -o 'ProxyCommand tsh proxy ssh %r@%h:%p' user@node")
    _common(pssh, suppress=True)
    pssh.add_argument("--cluster", default="", help="The cluster of the node")
    pssh.add_argument("target", metavar="[user@]host[:port]")

    add("config", "Print an OpenSSH client configuration.",
        "Print an ssh_config block that sends ssh through the proxy with your tsh certificate, "
        "e.g. 'tsh config >> ~/.ssh/config'.")
    add("version", "Print the version.", "Print tsh's version.")
    add("agent", "Start an SSH agent with your certificate.",
        "Start an ssh-agent holding your key and certificate (until it expires) and print the "
        "SSH_AUTH_SOCK / SSH_AGENT_PID lines: eval $(tsh agent)")
    return parser


def cmd_status(args: argparse.Namespace) -> int:
    from teleport.client.keystore import KeyStore

    store = KeyStore()
    profile = store.current_profile()
    if profile is None:
        raise NotAuthenticated("not logged in: run 'tsh --proxy=HOST login'")
    cert_path = store.cert_path(profile.proxy_host, profile.user)
    try:
        with open(cert_path) as f:
            line = f.read()
    except FileNotFoundError:
        raise NotAuthenticated(f"no certificate at {cert_path}: run 'tsh login' again") from None
    from teleport.ca.sshcert import parse_cert

    info = parse_cert(line)
    from datetime import UTC, datetime

    until = datetime.fromtimestamp(info.valid_before, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = info.valid_before - time.time()
    print(f"> Profile URL:  https://{profile.web_proxy_addr}")
    print(f"  Logged in as: {info.key_id}")
    print(f"  Cluster:      {profile.cluster}")
    print(f"  Roles:        {', '.join(info.roles)}")
    print(f"  Logins:       {', '.join(p for p in info.principals if not p.startswith('-teleport-'))}")
    print(f"  Valid until:  {until} [{'valid for ' + fmt_remaining(left) if left > 0 else 'EXPIRED'}]")
    return 0 if left > 0 else 1


def _client_for(args: argparse.Namespace):  # type: ignore[no-untyped-def,unused-ignore]
    from teleport.client.keystore import KeyStore
    from teleport.client.webclient import WebClient

    store = KeyStore()
    profile = store.current_profile()
    proxy = args.proxy or (profile.web_proxy_addr if profile else None)
    if not proxy:
        raise BadParameter("no proxy given: use --proxy=HOST[:PORT] (the cluster's web address)")
    insecure = args.insecure or (profile is not None and not args.proxy and profile.insecure)
    return store, profile, WebClient(proxy, insecure=insecure)


def _print_login(out: Any) -> None:
    print(f"> Profile URL:  https://{out.profile.web_proxy_addr}")
    print(f"  Logged in as: {out.profile.user}")
    print(f"  Cluster:      {out.profile.cluster}")
    print(f"  Roles:        {', '.join(out.roles)}")
    print(f"  Logins:       {', '.join(out.logins)}")
    print(f"  Valid until:  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(out.expires))} "
          f"[valid for {fmt_remaining(out.expires - time.time())}]")
    print(f"  Key:          {out.key_path} ({out.agent})")


def _login(args: argparse.Namespace) -> Any:
    """Ask for the password (and one-time code) and log in; returns the LoginOutcome."""
    import getpass

    from teleport.client import session
    from teleport.client.prompt import ask_secret

    store, profile, client = _client_for(args)
    info = session.ping(client)
    ttl = args.ttl * 60 if args.ttl else None
    auth = getattr(args, "auth", "") or ""
    if auth != "local" and (auth or info.get("auth", {}).get("type", "local") != "local"):
        from teleport.client import sso

        connector = sso.pick_connector(info, auth)
        return sso.login(client, info, connector, ttl, store, browser=getattr(args, "browser", ""))
    mode = info.get("auth", {}).get("second_factor", "otp")
    if mode == "webauthn":
        web = info.get("proxy", {}).get("web", {}).get("public_addr") or client.addr
        raise AccessDenied(
            "this cluster's second factor is a security key (webauthn), which tsh cannot use: "
            f"log in in the browser at https://{web}/web"
        )
    user = args.user or (profile.user if profile and not args.proxy else None) or getpass.getuser()
    password = ask_secret(f"Enter password for Teleport user {user}: ")
    otp = ""
    if mode in ("otp", "on"):
        otp = ask_secret("Enter your OTP token: ")
    elif mode == "optional":
        otp = ask_secret("Enter your OTP token (empty if you have none): ")
    return session.login(client, user, password, otp, ttl, store, pinged=info)


def cmd_login(args: argparse.Namespace) -> int:
    _print_login(_login(args))
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from teleport.client.keystore import KeyStore
    from teleport.client.session import logout

    store = KeyStore()
    profile = store.current_profile()
    if profile is None:
        print("You are not logged in.")
        return 0
    logout(store)
    print(f"Logged out {profile.user} from {profile.web_proxy_addr}.")
    return 0


def cmd_signup(args: argparse.Namespace) -> int:
    from teleport.client import session
    from teleport.client.keystore import KeyStore
    from teleport.client.prompt import ask_new_password, ask_secret
    from teleport.client.webclient import WebClient

    proxy, token = session.parse_invite_url(args.url)
    client = WebClient(proxy, insecure=args.insecure)
    info = session.signup_info(client, token)
    if info.get("second_factor") == "webauthn":
        raise AccessDenied(
            "this cluster's second factor is a security key (webauthn), which tsh cannot "
            f"register: open the invite URL in a browser to sign up: {args.url}"
        )
    user = info["user"]
    print(f"Welcome, {user}! Choose a password for your Teleport account.")
    # checked (length, match) right away and asked again, before the QR code and the code
    password = ask_new_password()
    code = ""
    if info.get("otp_secret"):
        print()
        print("Scan this QR code with an authenticator app (Google Authenticator, FreeOTP, ...),")
        print("or enter the secret by hand:")
        print()
        print(render_qr(info["otp_uri"]))
        print(info["otp_uri"])
        print()
        print(f"Secret: {info['otp_secret']}")
        code = ask_secret("Enter the 6-digit code the app shows: ")
    ttl = args.ttl * 60 if args.ttl else None
    # Signup logs the user in with the same password and code (a second login right away would
    # need the authenticator's next code).
    out = session.complete_signup_and_login(client, token, password, code, ttl, KeyStore())
    print(f"Account {user} is ready and you are logged in.")
    _print_login(out)
    return 0


# ssh, scp, ls -----------------------------------------------------------------------------
def _split_target(dest: str, login: str | None) -> tuple[str, str]:
    import getpass

    user, at, host = dest.rpartition("@")
    if not host:
        raise BadParameter(f"bad target {dest!r}: use [user@]host")
    return (user if at else (login or getpass.getuser())), host


def _credentials(args: argparse.Namespace) -> Any:
    """The profile's credentials; without a valid certificate, log in first (password and code)
    as OpenSSH users expect from 'ssh host', then go on."""
    from teleport.client import ssh
    from teleport.client.keystore import KeyStore

    try:
        return ssh.load_credentials(proxy=args.proxy, identity=getattr(args, "identity", None))
    except NotAuthenticated as exc:
        if getattr(args, "identity", None) or (KeyStore().current_profile() is None and not args.proxy):
            raise
        sys.stderr.write(f"{exc.args[0].split(':')[0]}: logging in.\n")
    out = _login(args)
    sys.stderr.write(f"Logged in as {out.profile.user} until "
                     f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(out.expires))}.\n")
    return ssh.load_credentials(proxy=args.proxy)


def cmd_ssh(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client.escape import parse_escape_char

    if not args.destination:
        raise BadParameter(
            "tsh ssh needs a destination: tsh ssh [user@]host [command ...]; the command is "
            "optional (a shell by default); 'tsh ls' lists the nodes"
        )
    try:
        args.escape = None if args.escapes == "false" else parse_escape_char(args.escape_char)
    except ValueError as exc:
        raise BadParameter(f"{exc} Use one character, ^X, or none") from None
    if args.no_command and args.remote_command:
        raise BadParameter("-N runs no command: drop the command, or drop -N")
    creds = _credentials(args)
    _check_cluster(args, creds)
    return asyncio.run(_ssh(args, creds))


async def _ssh(args: argparse.Namespace, creds: Any) -> int:
    import asyncio

    from teleport.client import forwarding, run, ssh, trusted
    from teleport.proxy.lookup import filter_by_labels, label_selector

    login, host = _split_target(args.destination, args.login)
    # joined with spaces and run by the remote shell, exactly as OpenSSH's ssh does
    command = " ".join(args.remote_command) if args.remote_command else None
    proxy = await ssh.connect_proxy(creds, login)
    try:
        creds = await trusted.creds_for(proxy, creds, args.cluster)
        selector = label_selector(host)
        if selector is not None:
            if command is None:
                raise BadParameter("a label target runs a command on many nodes: give the command")
            nodes = filter_by_labels(
                await trusted.list_nodes(proxy, args.cluster, creds.profile.cluster), selector)
            if not nodes:
                raise BadParameter(f"no nodes match the labels {host!r} (see 'tsh ls')")
            return max(await asyncio.gather(*(
                _run_on(proxy, creds, n, args, login, command) for n in nodes
            )))
        try:
            conn = await ssh.connect_node(
                proxy, creds, host, args.port, login, args.cluster, agent_forwarding=args.agent
            )
        except ConnectionProblem as exc:
            raise await ssh.explain_unknown_node(proxy, creds, host, exc) from None
        code = 0
        async with conn:
            await forwarding.start_forwards(conn, args.forward, args.remote_forward, args.dynamic_forward)
            if args.background:
                forwarding.go_background()
            if args.no_command:
                await conn.wait_closed()
            else:
                code = await run.run_session(conn, command, args.tty, escape_char=args.escape,
                                             host=host)
        return code
    finally:
        proxy.close()


async def _run_on(proxy: Any, creds: Any, node: dict[str, Any], args: argparse.Namespace,
                  login: str, command: str) -> int:
    from teleport.client import run, ssh

    name = node.get("spec", {}).get("hostname") or node["metadata"]["name"]
    try:
        conn = await ssh.connect_node(proxy, creds, node["metadata"]["name"], args.port, login,
                                      args.cluster)
    except Exception as exc:  # one node's failure must not hide the others' output
        sys.stderr.write(f"[{name}] ERROR: {exc}\n")
        return 1
    async with conn:
        code = await run.run_prefixed(conn, command, name)
    return code


def cmd_scp(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from teleport.client import scp

    if len(args.paths) < 2:
        raise BadParameter("tsh scp needs a source and a destination: tsh scp SRC... DST")
    locs = [scp.parse_location(p) for p in args.paths]
    src, dst = locs[:-1], locs[-1]
    remotes = {(loc.host, loc.login) for loc in locs if loc.remote}
    if len(remotes) != 1 or (dst.remote and any(s.remote for s in src)) or (
        not dst.remote and not all(s.remote for s in src)
    ):
        raise BadParameter(
            "tsh scp copies between this machine and one node: use host:path on exactly one side"
        )
    host, login = next(iter(remotes))
    login, host = _split_target(f"{login}@{host}" if login else host, None)
    for loc in src:
        # OpenSSH's scp says this before connecting, with the path
        if not loc.remote and not os.path.exists(loc.path):
            raise BadParameter(f"scp: {loc.path}: No such file or directory")
    creds = _credentials(args)
    _check_cluster(args, creds)
    return asyncio.run(_scp(args, creds, src, dst, host, login))


async def _scp(args: argparse.Namespace, creds: Any, src: Any, dst: Any, host: str,
               login: str) -> int:
    from teleport.client import scp, ssh, trusted

    proxy = await ssh.connect_proxy(creds, login)
    try:
        creds = await trusted.creds_for(proxy, creds, args.cluster)
        try:
            conn = await ssh.connect_node(proxy, creds, host, args.port, login, args.cluster)
        except ConnectionProblem as exc:
            raise await ssh.explain_unknown_node(proxy, creds, host, exc) from None
        async with conn:
            async with conn.start_sftp_client() as sftp:
                progress = None if args.quiet else scp.Progress()
                errors = await scp.copy(sftp, src, dst, args.recursive, progress)
    finally:
        proxy.close()
    for message in errors:
        sys.stderr.write(message + "\n")
    return 1 if errors else 0


def cmd_ls(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_ls(args))


async def _ls(args: argparse.Namespace) -> int:
    import json

    from teleport.cli.common import table
    from teleport.client import ssh, trusted
    from teleport.proxy.lookup import filter_by_labels, label_selector, node_labels

    selector: dict[str, str] = {}
    for item in args.labels:
        sel = label_selector(item)
        if sel is None:
            raise BadParameter(f"bad label filter {item!r}: use key=value")
        selector.update(sel)
    creds = ssh.load_credentials(proxy=args.proxy)
    _check_cluster(args, creds)
    proxy = await ssh.connect_proxy(creds)
    try:
        await trusted.creds_for(proxy, creds, args.cluster)  # an unknown cluster is an error
        nodes = filter_by_labels(await trusted.list_nodes(proxy, args.cluster, creds.profile.cluster), selector)
    finally:
        proxy.close()
    nodes.sort(key=lambda n: (n.get("spec", {}).get("hostname", ""), n["metadata"]["name"]))
    if args.format == "json":
        print(json.dumps(nodes, indent=2))
    elif args.format == "yaml":
        import yaml

        print(yaml.safe_dump(nodes, sort_keys=False), end="")
    else:
        rows = [
            [
                n.get("spec", {}).get("hostname", ""),
                n["metadata"]["name"],
                n.get("spec", {}).get("addr", ""),
                ",".join(f"{k}={v}" for k, v in sorted(node_labels(n).items())),
            ]
            for n in nodes
        ]
        print(table(["Node Name", "Node ID", "Address", "Labels"], rows))
    return 0


def _check_cluster(args: argparse.Namespace, creds: Any) -> None:
    """--cluster must name a cluster this proxy knows: never silently the local one."""
    from teleport.client.clusters import check_cluster
    from teleport.types.names import check_cluster as check_name

    wanted = getattr(args, "cluster", "") or ""
    if wanted and wanted != creds.profile.cluster:
        check_name(wanted)  # a leaf: the proxy says whether it knows it (client/trusted.py)
        return
    check_cluster(wanted, creds.profile.cluster)


def cmd_clusters(args: argparse.Namespace) -> int:
    from teleport.cli.common import table
    from teleport.client import ssh
    from teleport.client.clusters import known_clusters

    creds = ssh.load_credentials(proxy=args.proxy)

    async def fetch() -> list[dict[str, Any]]:
        from teleport.client import trusted

        proxy = await ssh.connect_proxy(creds)
        try:
            clusters = await trusted.fetch_clusters(proxy)
        finally:
            proxy.close()
        leaves = [c for c in clusters if c["name"] != creds.profile.cluster]
        trusted.remember_leaf_cas(creds.known_hosts_path, leaves)  # for tsh config / OpenSSH
        return leaves

    import asyncio

    rows = [[c["name"], c["status"]] for c in known_clusters(creds.profile.cluster, asyncio.run(fetch()))]
    print(table(["Cluster Name", "Status"], rows))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from teleport.client import ssh
    from teleport.client.sshconfig import ssh_config_block

    creds = ssh.load_credentials(proxy=args.proxy)
    host, port = ssh._split_hostport(creds.ssh_proxy_addr, 3023)
    from teleport.client.trusted import leaves_in_known_hosts

    # the leaves 'tsh clusters' has seen get a block each: NODE.LEAF through the same proxy
    for cluster in [creds.profile.cluster, *leaves_in_known_hosts(creds.known_hosts_path, creds.profile.cluster)]:
        sys.stdout.write(ssh_config_block(
            cluster=cluster, proxy_host=host, proxy_port=port,
            key_path=creds.key_path, cert_path=creds.cert_path, known_hosts=creds.known_hosts_path,
        ))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from teleport.client import ssh
    from teleport.client.agent import shell_lines, start_agent

    creds = ssh.load_credentials(proxy=args.proxy)
    sys.stdout.write(shell_lines(start_agent(creds.key_path, creds.valid_before)))
    return 0


# recordings, play, sessions, join -------------------------------------------------------
def _need_ls(args: argparse.Namespace, command: str) -> None:
    if getattr(args, "subcommand", None) != "ls":
        raise BadParameter(f"use 'tsh {command} ls'")


def cmd_recordings(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client.sessions import RECORDING_HEADERS, recording_rows

    _need_ls(args, "recordings")
    return asyncio.run(
        _auth_listing(args, lambda auth: auth.list_recordings(), RECORDING_HEADERS, recording_rows)
    )


async def _auth_listing(
    args: argparse.Namespace,
    fetch: Callable[[Any], Awaitable[list[dict[str, Any]]]],
    headers: Sequence[str],
    rows: Callable[[list[dict[str, Any]]], list[list[str]]],
) -> int:
    """Fetch a list from the auth API through the proxy and print it as a table or JSON."""
    import json

    from teleport.cli.common import table
    from teleport.client import ssh
    from teleport.client.authtunnel import auth_client_via_proxy

    creds = ssh.load_credentials(proxy=args.proxy)
    async with auth_client_via_proxy(creds) as auth:
        items = await fetch(auth)
    if args.format == "json":
        print(json.dumps(items, indent=2))
    else:
        print(table(headers, rows(items)))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client.play import parse_speed

    speed = parse_speed(args.speed)
    data = asyncio.run(_fetch_recording(args))
    from teleport.cli.common import fail
    from teleport.client.play import incomplete_message, play
    from teleport.recording.asciicast import format_cast, load_cast

    rec = load_cast(data)
    out = sys.stdout
    if args.format == "cast":
        out.buffer.write(format_cast(rec.header, rec.events).encode())
        out.flush()
    else:
        def write(text: str) -> None:
            out.buffer.write(text.encode("utf-8", errors="replace"))
            out.flush()

        play(rec.header, rec.events, write, time.sleep, speed=speed, resize=out.isatty())
    if not rec.complete:
        # Shown as far as it goes, then said after it (a replay scrolls a warning away), and a
        # non-zero exit so that a script exporting recordings notices.
        return fail(incomplete_message(args.sid, rec.problems, rec.events))
    return 0


async def _fetch_recording(args: argparse.Namespace) -> bytes:
    from teleport.client import ssh
    from teleport.client.authtunnel import auth_client_via_proxy
    from teleport.errors import NotFound

    creds = ssh.load_credentials(proxy=args.proxy)
    if args.cluster and args.cluster != creds.profile.cluster:
        from teleport.client import trusted

        proxy = await ssh.connect_proxy(creds)
        try:
            await trusted.creds_for(proxy, creds, args.cluster)  # an unknown cluster is an error
            return await trusted.fetch_recording(proxy, args.cluster, args.sid)
        finally:
            proxy.close()
    async with auth_client_via_proxy(creds) as auth:
        try:
            return await auth.get_recording(args.sid)
        except NotFound as exc:
            raise NotFound(f"{exc}; see 'tsh recordings ls' for recorded sessions") from None


def cmd_sessions(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client.sessions import SESSION_HEADERS, session_rows

    _need_ls(args, "sessions")
    return asyncio.run(
        _auth_listing(args, lambda auth: auth.list_sessions(), SESSION_HEADERS, session_rows)
    )


def cmd_join(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client import ssh
    from teleport.client.join import join_session

    creds = ssh.load_credentials(proxy=args.proxy)
    return asyncio.run(join_session(creds, args.sid, args.port))


def render_qr(data: str) -> str:
    """A QR code drawn with block characters, two modules per character row."""
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    qr.make(fit=True)
    m = qr.get_matrix()
    if len(m) % 2:
        m.append([False] * len(m[0]))
    chars = {(False, False): "\u2588", (True, False): "\u2584", (False, True): "\u2580", (True, True): " "}
    return "\n".join(
        "".join(chars[(m[y][x], m[y + 1][x])] for x in range(len(m[0]))) for y in range(0, len(m), 2)
    )


def cmd_proxy(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client import relay
    from teleport.config.addr import parse_host_port

    if args.subcommand != "ssh":
        raise BadParameter("tsh proxy needs a subcommand: tsh proxy ssh [user@]host[:port]")
    login, hostport = _split_target(args.target, None)
    addr = parse_host_port(hostport, defaults.NODE_SSH_PORT)
    creds = _credentials(args)
    _check_cluster(args, creds)
    return asyncio.run(relay.relay_stdio(creds, login, addr.host, addr.port, args.cluster))


def cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client import bench
    from teleport.client.benchstats import export_csv, render, summarize
    from teleport.durations import parse_duration

    if not args.remote_command:
        raise BadParameter("tsh bench needs a command for each session to run, e.g. "
                           "'tsh bench --rate=10 --duration=30s root@node true'")
    duration = parse_duration(args.duration)
    if not (args.rate > 0 and duration > 0):
        raise BadParameter("--rate and --duration must be positive, e.g. --rate=10 --duration=30s")
    creds = _credentials(args)
    _check_cluster(args, creds)
    login, host = _split_target(args.destination, None)
    try:
        results, elapsed = asyncio.run(bench.run(
            creds, login, host, args.port, " ".join(args.remote_command), rate=args.rate,
            duration=duration, interactive=args.interactive, cluster=args.cluster))
    except ValueError as exc:
        raise BadParameter(str(exc)) from None
    summary = summarize(results, elapsed)
    sys.stdout.write(render(summary))
    if args.export:
        with open(args.export, "w", encoding="utf-8") as f:
            f.write(export_csv(results))
        sys.stdout.write(f"\nEvery session written to {args.export}\n")
    return 1 if summary.failed == summary.originated else 0


def cmd_version(args: argparse.Namespace) -> int:
    from teleport import __version__

    print(f"Teleport v{__version__} tsh (Python {sys.version.split()[0]})")
    return 0


def ssh_main(argv: list[str]) -> int:
    """tsh called as `ssh`: OpenSSH's command line (see client/sshargs.py)."""
    from teleport.client.sshargs import USAGE, SshUsageError, parse_ssh_argv

    try:
        cl = parse_ssh_argv(argv)
    except SshUsageError as exc:
        if exc.message:
            sys.stderr.write(f"ssh: {exc.message}\n" if exc.show_usage else f"{exc.message}\n")
        if exc.show_usage:
            sys.stderr.write(USAGE)
        return 255
    if cl.version:
        return cmd_version(argparse.Namespace())
    # OpenSSH exits 255 when ssh itself fails, the remote command's status otherwise
    return main(cl.tsh_args(), error_code=255)


def main(argv: list[str] | None = None, error_code: int = 1) -> int:
    """tsh's entry point; as `ssh` (argv[0]) it takes OpenSSH's command line."""
    import os

    if argv is None and os.path.basename(sys.argv[0]) == "ssh":
        return ssh_main(sys.argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {
        "login": cmd_login, "logout": cmd_logout, "status": cmd_status, "signup": cmd_signup,
        "ssh": cmd_ssh, "scp": cmd_scp, "ls": cmd_ls, "config": cmd_config, "agent": cmd_agent,
        "recordings": cmd_recordings, "play": cmd_play, "sessions": cmd_sessions, "join": cmd_join,
        "version": cmd_version, "clusters": cmd_clusters, "bench": cmd_bench,
        "proxy": cmd_proxy,
    }
    if args.command is None:
        parser.print_help()
        return 1
    if args.ttl is not None and not 1 <= args.ttl <= 1800:
        sys.stderr.write("ERROR: --ttl is in minutes, between 1 and 1800 (30 hours)\n")
        return 1
    if args.global_cluster:  # `tsh --cluster=LEAF ls` as `tsh ls --cluster=LEAF`
        if not hasattr(args, "cluster"):
            sys.stderr.write(f"ERROR: tsh {args.command} does not take --cluster (ssh, scp and ls do)\n")
            return 1
        args.cluster = args.cluster or args.global_cluster
    return run_cli(lambda: commands[args.command](args), error_code=error_code)


if __name__ == "__main__":
    sys.exit(main())
