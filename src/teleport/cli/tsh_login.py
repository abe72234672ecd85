"""tsh's identity commands: login (password and code, a security key's browser pointer, or SSO),
logout, status, signup, and the credentials every other command starts from (logging in first
when the certificate is missing or expired, as OpenSSH users expect from `ssh host`)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from teleport.cli.common import fmt_remaining
from teleport.errors import AccessDenied, BadParameter, NotAuthenticated


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
def split_target(dest: str, login: str | None) -> tuple[str, str]:
    """(login, host) of [user@]host: the login given, else `login`, else the OS user name."""
    import getpass

    user, at, host = dest.rpartition("@")
    if not host:
        raise BadParameter(f"bad target {dest!r}: use [user@]host")
    return (user if at else (login or getpass.getuser())), host


def credentials(args: argparse.Namespace) -> Any:
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
