"""tsh's login, signup, status and logout: the library the CLI and tests call."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from teleport.client.keystore import KeyStore, Profile
from teleport.client.webclient import WebClient, join_host_port
from teleport.config.addr import parse_host_port
from teleport.errors import BadParameter, TeleportError
from teleport.types.names import api_path


@dataclass
class LoginOutcome:
    profile: Profile
    logins: list[str]
    roles: list[str]
    expires: float
    key_path: str
    agent: str  # what happened with the ssh-agent


def ping(client: WebClient) -> dict[str, Any]:
    """The proxy's self-description: auth type, second factor, SSH address, cluster."""
    data = client.call("GET", "/v1/webapi/ping")
    if not isinstance(data, dict):
        raise TeleportError(f"{client.addr} does not look like a teleport proxy")
    return data


def login(
    client: WebClient,
    user: str,
    password: str,
    otp_code: str,
    ttl_seconds: float | None,
    store: KeyStore,
    pinged: dict[str, Any] | None = None,
) -> LoginOutcome:
    """Generate a key, have the proxy and auth check the credentials and sign it, store it."""
    from teleport.ca import keys as cakeys

    info = pinged or ping(client)
    key = cakeys.generate_private_key("ed25519")
    public = cakeys.public_key_to_openssh(key)
    resp = client.call(
        "POST",
        "/v1/webapi/ssh/certs",
        {"user": user, "password": password, "otp_token": otp_code, "pub_key": public, "ttl": ttl_seconds},
    )
    return _save_login(client, info, key, resp, store)


def _save_login(client: WebClient, info: dict[str, Any], key: Any, resp: dict[str, Any],
                store: KeyStore) -> LoginOutcome:
    """Store a login's key, certificates and the cluster's host CA as the current profile."""
    from teleport.ca import keys as cakeys

    public = cakeys.public_key_to_openssh(key)
    ssh_addr = info.get("proxy", {}).get("ssh", {}).get("public_addr") or join_host_port(client.host, 3023)
    profile = Profile(
        web_proxy_addr=client.addr,
        ssh_proxy_addr=ssh_addr,
        user=resp["username"],
        cluster=resp["cluster_name"],
        insecure=client.insecure,
    )
    host_keys = [k for s in resp["host_signers"] for k in s["checking_keys"]]
    store.save(
        profile,
        cakeys.private_key_to_openssh(key),
        public,
        resp["cert"],
        resp["tls_cert"],
        resp["tls_ca"],
        host_keys,
    )
    key_path = store.key_path(profile.proxy_host, profile.user)
    agent = add_to_agent(key_path, float(resp["expires"]))
    return LoginOutcome(profile, resp["logins"], resp["roles"], float(resp["expires"]), key_path, agent)


def add_to_agent(key_path: str, expires: float) -> str:
    """Load the key and its certificate into the running ssh-agent, for as long as the cert lives."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return "no ssh-agent running (SSH_AUTH_SOCK is not set)"
    ssh_add = shutil.which("ssh-add")
    if ssh_add is None:
        return "ssh-add not found: the key was not added to the agent"
    lifetime = max(int(expires - time.time()), 1)
    # ssh-add picks up <key>-cert.pub next to the key and loads both
    res = subprocess.run(
        [ssh_add, "-t", str(lifetime), key_path], capture_output=True, text=True, timeout=15
    )
    if res.returncode != 0:
        return f"could not add the key to the ssh-agent: {res.stderr.strip()}"
    return "added to the ssh-agent"


def remove_from_agent(key_path: str) -> None:
    """Remove the key (and its certificate) from the running ssh-agent, if any."""
    if not os.environ.get("SSH_AUTH_SOCK") or not os.path.exists(key_path + ".pub"):
        return
    ssh_add = shutil.which("ssh-add")
    if ssh_add:
        subprocess.run([ssh_add, "-d", key_path], capture_output=True, timeout=15)


def signup_info(client: WebClient, token: str) -> dict[str, Any]:
    """The invite's user name and one-time-code secret."""
    return client.call("GET", api_path("/v1/webapi/users/invites/{token}", token=token))


def complete_signup_and_login(
    client: WebClient, token: str, password: str, otp_code: str, ttl_seconds: float | None,
    store: KeyStore,
) -> LoginOutcome:
    """Complete the invite and log in with the same answer (the one-time code works once, so a
    separate login right after signup would have to wait for the next code)."""
    from teleport.ca import keys as cakeys

    info = ping(client)
    key = cakeys.generate_private_key("ed25519")
    resp = client.call(
        "POST", "/v1/webapi/users",
        {"invite_token": token, "password": password, "otp_code": otp_code,
         "pub_key": cakeys.public_key_to_openssh(key), "ttl": ttl_seconds},
    )
    if not isinstance(resp.get("login"), dict):
        raise TeleportError(
            f"the account {resp.get('user')!r} was created but the proxy did not log you in: "
            "run 'tsh login' with the next code your authenticator app shows"
        )
    return _save_login(client, info, key, resp["login"], store)


def complete_signup(client: WebClient, token: str, password: str, otp_code: str) -> str:
    resp = client.call(
        "POST", "/v1/webapi/users", {"invite_token": token, "password": password, "otp_code": otp_code}
    )
    return str(resp["user"])


_INVITE_FORM = "expected an invite URL like https://proxy:3080/web/invite/TOKEN"
# Tokens are hex today; URL-safe characters only, so that the token can never change the path
# of the request it goes into (no "/", "%", "..", "?" or "#").
_INVITE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def parse_invite_url(url: str) -> tuple[str, str]:
    """'https://host:3080/web/invite/TOKEN' -> ('host:3080', 'TOKEN').

    BadParameter for anything else: another scheme, a bad host:port, a token with characters
    other than letters, digits, "_" and "-" (copy the whole URL `tctl users add` printed).
    """
    if not isinstance(url, str):
        raise BadParameter(f"{_INVITE_FORM}, got {type(url).__name__}")
    shown = url if len(url) <= 200 else url[:197] + "..."
    rest = url.strip()
    if not rest.startswith("https://"):
        raise BadParameter(f"{_INVITE_FORM}, got {shown!r}")
    rest = rest[len("https://") :]
    host, _, path = rest.partition("/")
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[:2] != ["web", "invite"] or not parts[2]:
        raise BadParameter(f"{_INVITE_FORM}, got {shown!r}")
    try:
        parse_host_port(host, 3080)
    except BadParameter:
        raise BadParameter(f"{_INVITE_FORM}: bad proxy address {host!r}") from None
    if not _INVITE_TOKEN.fullmatch(parts[2]):
        raise BadParameter(
            f"{_INVITE_FORM}: the token may hold only letters, digits, '_' and '-'; "
            "copy the whole URL that `tctl users add` printed"
        )
    return host, parts[2]


def logout(store: KeyStore) -> list[str]:
    """Remove the current profile's keys (from disk and the agent)."""
    profile = store.current_profile()
    if profile is None:
        return []
    remove_from_agent(store.key_path(profile.proxy_host, profile.user))
    return store.remove(profile)
