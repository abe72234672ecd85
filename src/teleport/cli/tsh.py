"""`tsh`: the user's client. login | logout | status | signup (ssh, scp, ls and more build on it).

Kept light on imports: `tsh status` runs at every prompt of some users' shells.
"""

from __future__ import annotations

import argparse
import sys
import time

from teleport.cli.common import fmt_remaining, run_cli
from teleport.errors import BadParameter, NotAuthenticated


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, desc: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=desc)
        _common(p, suppress=True)
        return p

    add(
        "login",
        "Log in to a cluster and receive a certificate.",
        "Ask for your password and one-time code, and store a short-lived certificate in ~/.tsh "
        "(and in your ssh-agent when one runs).",
    )
    add("logout", "Delete the certificate and keys.", "Remove the current profile's keys from ~/.tsh and the ssh-agent.")
    add("status", "Show who you are logged in as.", "Show the current profile: user, logins, roles and expiry.")
    sp = add(
        "signup",
        "Complete an invite from the terminal.",
        "Complete an invite URL from 'tctl users add': choose a password and enrol an "
        "authenticator app for one-time codes.",
    )
    sp.add_argument("url", help="The invite URL, https://PROXY:3080/web/invite/TOKEN")
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


def _client_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from teleport.client.keystore import KeyStore
    from teleport.client.webclient import WebClient

    store = KeyStore()
    profile = store.current_profile()
    proxy = args.proxy or (profile.web_proxy_addr if profile else None)
    if not proxy:
        raise BadParameter("no proxy given: use --proxy=HOST[:PORT] (the cluster's web address)")
    insecure = args.insecure or (profile is not None and not args.proxy and profile.insecure)
    return store, profile, WebClient(proxy, insecure=insecure)


def cmd_login(args: argparse.Namespace) -> int:
    import getpass

    from teleport.client import session
    from teleport.client.prompt import ask_secret

    store, profile, client = _client_for(args)
    user = args.user or (profile.user if profile and not args.proxy else None) or getpass.getuser()
    info = session.ping(client)
    password = ask_secret(f"Enter password for Teleport user {user}: ")
    otp = ""
    if info.get("auth", {}).get("second_factor", "otp") == "otp":
        otp = ask_secret("Enter your OTP token: ")
    ttl = args.ttl * 60 if args.ttl else None
    out = session.login(client, user, password, otp, ttl, store, pinged=info)
    print(f"> Profile URL:  https://{out.profile.web_proxy_addr}")
    print(f"  Logged in as: {out.profile.user}")
    print(f"  Cluster:      {out.profile.cluster}")
    print(f"  Roles:        {', '.join(out.roles)}")
    print(f"  Logins:       {', '.join(out.logins)}")
    print(f"  Valid until:  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(out.expires))} "
          f"[valid for {fmt_remaining(out.expires - time.time())}]")
    print(f"  Key:          {out.key_path} ({out.agent})")
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
    from teleport.client.prompt import ask_secret
    from teleport.client.webclient import WebClient

    proxy, token = session.parse_invite_url(args.url)
    client = WebClient(proxy, insecure=args.insecure)
    info = session.signup_info(client, token)
    user = info["user"]
    print(f"Welcome, {user}! Choose a password for your Teleport account.")
    password = ask_secret("Password: ")
    again = ask_secret("Password (again): ")
    if password != again:
        raise BadParameter("the passwords do not match; run 'tsh signup' again")
    code = ""
    if info.get("second_factor") == "otp":
        print()
        print("Scan this QR code with an authenticator app (Google Authenticator, FreeOTP, ...),")
        print("or enter the secret by hand:")
        print()
        print(render_qr(info["otp_uri"]))
        print(info["otp_uri"])
        print()
        print(f"Secret: {info['otp_secret']}")
        code = ask_secret("Enter the 6-digit code the app shows: ")
    session.complete_signup(client, token, password, code)
    print(f"Account {user} is ready. Log in with: tsh --proxy={proxy}{' --insecure' if args.insecure else ''} login --user={user}")
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"login": cmd_login, "logout": cmd_logout, "status": cmd_status, "signup": cmd_signup}
    if args.command is None:
        parser.print_help()
        return 1
    if args.ttl is not None and not 1 <= args.ttl <= 1800:
        sys.stderr.write("ERROR: --ttl is in minutes, between 1 and 1800 (30 hours)\n")
        return 1
    return run_cli(lambda: commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
