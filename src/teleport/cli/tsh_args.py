"""tsh's command line: the parser of every subcommand and its options (no behaviour here)."""

from __future__ import annotations

import argparse

from teleport import defaults


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
