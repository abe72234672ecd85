"""The user's ~/.tsh: keys per proxy and user, the cluster's host CA, and the current profile.

Layout (as the original product): ~/.tsh/profile, ~/.tsh/known_hosts,
~/.tsh/keys/<proxy>/<user> (private key), <user>.pub, <user>-cert.pub, <user>-x509.pem,
<user>-tlsca.pem. Kept free of heavy imports: `tsh status` must start fast.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from teleport import defaults
from teleport.files import ensure_private_dir, write_public, write_secret


def tsh_home() -> str:
    """~/.tsh, or $TELEPORT_HOME when set (tests and several identities side by side)."""
    return os.environ.get("TELEPORT_HOME") or os.path.join(
        os.path.expanduser("~"), defaults.TSH_DIR_NAME
    )


@dataclass
class Profile:
    """What later commands need without --proxy: where the proxy is and who we are."""

    web_proxy_addr: str  # host:port of the HTTPS listener
    ssh_proxy_addr: str  # host:port of the SSH listener
    user: str
    cluster: str
    insecure: bool = False

    @property
    def proxy_host(self) -> str:
        return split_host(self.web_proxy_addr)

    def dump(self) -> str:
        return "".join(
            f"{k}: {v}\n"
            for k, v in (
                ("web_proxy_addr", self.web_proxy_addr),
                ("ssh_proxy_addr", self.ssh_proxy_addr),
                ("user", self.user),
                ("cluster", self.cluster),
                ("insecure", "true" if self.insecure else "false"),
            )
        )

    @classmethod
    def parse(cls, text: str) -> Profile:
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                values[key.strip()] = value.strip()
        return cls(
            web_proxy_addr=values.get("web_proxy_addr", ""),
            ssh_proxy_addr=values.get("ssh_proxy_addr", ""),
            user=values.get("user", ""),
            cluster=values.get("cluster", ""),
            insecure=values.get("insecure") == "true",
        )


def split_host(addr: str) -> str:
    """'host:port' / '[v6]:port' / 'host' -> host."""
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


class KeyStore:
    """Reads and writes ~/.tsh."""

    def __init__(self, home: str | None = None) -> None:
        self.home = home or tsh_home()

    @property
    def profile_path(self) -> str:
        return os.path.join(self.home, "profile")

    @property
    def known_hosts_path(self) -> str:
        return os.path.join(self.home, "known_hosts")

    def key_dir(self, proxy_host: str) -> str:
        return os.path.join(self.home, "keys", proxy_host)

    def key_path(self, proxy_host: str, user: str) -> str:
        return os.path.join(self.key_dir(proxy_host), user)

    def cert_path(self, proxy_host: str, user: str) -> str:
        return self.key_path(proxy_host, user) + "-cert.pub"

    def current_profile(self) -> Profile | None:
        try:
            with open(self.profile_path) as f:
                prof = Profile.parse(f.read())
        except FileNotFoundError:
            return None
        return prof if prof.web_proxy_addr and prof.user else None

    def save(
        self,
        profile: Profile,
        private_key: bytes,
        public_key: str,
        cert: str,
        tls_cert: str,
        tls_ca: str,
        host_ca_keys: list[str],
    ) -> None:
        """Store a login's key material (0600) and make it the current profile."""
        ensure_private_dir(self.home)
        kdir = ensure_private_dir(self.key_dir(profile.proxy_host))
        base = os.path.join(kdir, profile.user)
        write_secret(base, private_key)
        write_public(base + ".pub", public_key.strip() + "\n")
        write_public(base + "-cert.pub", cert.strip() + "\n")
        write_secret(base + "-x509.pem", tls_cert)
        write_public(base + "-tlsca.pem", tls_ca)
        self._update_known_hosts(profile, host_ca_keys)
        write_public(self.profile_path, profile.dump(), 0o600)

    def _update_known_hosts(self, profile: Profile, host_ca_keys: list[str]) -> None:
        from teleport.ca.export import known_hosts_line

        patterns = [profile.proxy_host, profile.cluster, f"*.{profile.cluster}", "*"]
        keep: list[str] = []
        try:
            with open(self.known_hosts_path) as f:
                # drop lines of this cluster so that a rotated CA replaces the old one
                keep = [ln for ln in f.read().splitlines() if f"clustername={profile.cluster}" not in ln]
        except FileNotFoundError:
            pass
        for key in host_ca_keys:
            line = known_hosts_line(key, profile.cluster, patterns)
            keep.append(f"{line} clustername={profile.cluster}")
        write_public(self.known_hosts_path, "\n".join(keep) + "\n")

    def remove(self, profile: Profile) -> list[str]:
        """Delete the keys of this profile and the profile itself; returns removed paths."""
        removed = []
        kdir = self.key_dir(profile.proxy_host)
        if os.path.isdir(kdir):
            shutil.rmtree(kdir)
            removed.append(kdir)
        if os.path.exists(self.profile_path):
            os.remove(self.profile_path)
            removed.append(self.profile_path)
        return removed
