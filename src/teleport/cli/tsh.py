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
from teleport.cli.common import run_cli
from teleport.cli.tsh_args import build_parser
from teleport.cli.tsh_login import (
    cmd_login,
    cmd_logout,
    cmd_signup,
    cmd_status,
    credentials,
    split_target,
)
from teleport.errors import BadParameter, ConnectionProblem


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
    creds = credentials(args)
    _check_cluster(args, creds)
    return asyncio.run(_ssh(args, creds))


async def _ssh(args: argparse.Namespace, creds: Any) -> int:
    import asyncio

    from teleport.client import forwarding, run, ssh, trusted
    from teleport.proxy.lookup import filter_by_labels, label_selector

    login, host = split_target(args.destination, args.login)
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
    login, host = split_target(f"{login}@{host}" if login else host, None)
    for loc in src:
        # OpenSSH's scp says this before connecting, with the path
        if not loc.remote and not os.path.exists(loc.path):
            raise BadParameter(f"scp: {loc.path}: No such file or directory")
    creds = credentials(args)
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


def cmd_proxy(args: argparse.Namespace) -> int:
    import asyncio

    from teleport.client import relay
    from teleport.config.addr import parse_host_port

    if args.subcommand != "ssh":
        raise BadParameter("tsh proxy needs a subcommand: tsh proxy ssh [user@]host[:port]")
    login, hostport = split_target(args.target, None)
    addr = parse_host_port(hostport, defaults.NODE_SSH_PORT)
    creds = credentials(args)
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
    creds = credentials(args)
    _check_cluster(args, creds)
    login, host = split_target(args.destination, None)
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
