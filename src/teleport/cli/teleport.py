"""`teleport`: the daemon. start | configure | version | status."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from teleport import __version__, defaults
from teleport.cli.common import run_cli

if TYPE_CHECKING:
    from teleport.config.model import FileConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teleport",
        description="The Teleport daemon: runs any mix of the auth, proxy and node services.",
    )
    parser.add_argument("--version", action="version",
                        version=f"Teleport v{__version__} (Python {sys.version.split()[0]})",
                        help="Print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    start = sub.add_parser(
        "start",
        help="Start the Teleport daemon.",
        description="Start the services named by --roles (default: all three on this host). "
        "Flags override the configuration file.",
    )
    start.add_argument("-d", "--debug", action="store_true", help="Enable verbose logging to stderr")
    start.add_argument(
        "-r", "--roles", help="Comma-separated list of roles to start with [proxy,node,auth]"
    )
    start.add_argument("--advertise-ip", help="IP to advertise to clients if running behind NAT")
    start.add_argument("-l", "--listen-ip", help="IP address to bind to [all]")
    start.add_argument(
        "--auth-server", action="append", help="Address of the auth server (HOST[:3025]); repeatable"
    )
    start.add_argument("--token", help="Join token to register with an auth server [none]")
    start.add_argument("--ca-pin", help="Pin of the cluster's CA (sha256:...), checked when joining")
    start.add_argument("--nodename", help="Name of this node, defaults to hostname")
    start.add_argument(
        "-c",
        "--config",
        help=f"Path to a configuration file [{defaults.CONFIG_FILE}]",
    )
    start.add_argument(
        "--pid-file", default="", help="Write the process id to this file (for systemd's PIDFile)"
    )
    start.add_argument(
        "--shutdown-timeout", default="",
        help="SIGQUIT and SIGHUP: how long live sessions may run on before they are closed "
        f"[{int(defaults.SHUTDOWN_TIMEOUT)}s], e.g. 30s, 10m",
    )
    start.add_argument(
        "--labels",
        help='List of labels for this node, e.g. env=prod,uptime=[1m:"uptime -p"]',
    )

    sub.add_parser(
        "configure",
        help="Print a sample configuration file (YAML) to standard output.",
        description="Print a complete, commented sample teleport.yaml that 'teleport start -c' accepts.",
    )
    sub.add_parser("version", help="Print the version.", description="Print the Teleport version.")
    sub.add_parser(
        "status",
        help="Show the current session (only inside a Teleport SSH session).",
        description="Show the cluster, node, session id and user of the current SSH session.",
    )
    return parser


def load_config(path: str | None) -> FileConfig:
    """The file given with -c, else /etc/teleport.yaml when it exists, else the defaults."""
    from teleport.config.fileconf import default_config, load_config_file

    if path:
        return load_config_file(path)
    if os.path.exists(defaults.CONFIG_FILE):
        return load_config_file(defaults.CONFIG_FILE)
    return default_config()


def cmd_start(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from teleport.config.start import apply_start_flags
    from teleport.service.lifecycle import Lifecycle, run

    cfg = apply_start_flags(
        load_config(args.config),
        roles=args.roles,
        advertise_ip=args.advertise_ip,
        listen_ip=args.listen_ip,
        auth_server=args.auth_server,
        token=args.token,
        nodename=args.nodename,
        labels=args.labels,
        debug=args.debug,
        ca_pin=args.ca_pin,
    )
    setup_logging(cfg.teleport.log_output, cfg.teleport.log_severity)
    if not cfg.roles():
        sys.stderr.write("ERROR: no service is enabled: set --roles or enable a service in the file\n")
        return 1
    logging.getLogger("teleport").debug("starting roles %s", ",".join(cfg.roles()))
    life = Lifecycle(pid_file=os.path.abspath(args.pid_file) if args.pid_file else "",
                     check_config=lambda: load_config(args.config))
    if args.shutdown_timeout:
        from teleport.durations import parse_duration
        from teleport.errors import TeleportError

        try:
            life.shutdown_timeout = parse_duration(args.shutdown_timeout)
        except TeleportError as exc:
            sys.stderr.write(f"ERROR: --shutdown-timeout: {exc}\n")
            return 1
    asyncio.run(run(cfg, life=life))
    return 0


def setup_logging(output: str, severity: str) -> None:
    import logging
    import logging.handlers

    level = {"WARN": "WARNING"}.get(severity.upper(), severity.upper())
    fmt = logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s")
    if output == "stdout":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
    elif output == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    elif output == "syslog":
        handler = logging.handlers.SysLogHandler(address="/dev/log")
    else:
        handler = logging.FileHandler(output)
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":
        logging.getLogger("asyncssh").setLevel(logging.WARNING)


def cmd_status(args: argparse.Namespace) -> int:
    sid = os.environ.get("TELEPORT_SESSION")
    if not sid:
        sys.stderr.write("ERROR: 'teleport status' works only inside a Teleport SSH session\n")
        return 1
    print(f"Cluster Name: {os.environ.get('TELEPORT_CLUSTER_NAME', '')}")
    print(f"Host UUID   : {os.environ.get('TELEPORT_HOST_UUID', '')}")
    print(f"Session ID  : {sid}")
    print(f"User        : {os.environ.get('TELEPORT_USER', '')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    if args.command == "version":
        print(f"Teleport v{__version__} (Python {sys.version.split()[0]})")
        return 0
    if args.command == "configure":
        from teleport.config.sample import sample_config

        sys.stdout.write(sample_config())
        return 0
    if args.command == "status":
        return cmd_status(args)
    return run_cli(lambda: cmd_start(args))


if __name__ == "__main__":
    sys.exit(main())
