"""Where the auth service leaves tctl's admin identity on its own host (kept apart from the
service supervisor so that tctl imports no server code)."""

from __future__ import annotations

import os

from teleport import defaults


def admin_identity_paths(data_dir: str) -> dict[str, str]:
    """The admin certificate, key, TLS CA and auth address files under data_dir."""
    base = os.path.join(data_dir, defaults.ADMIN_IDENTITY_DIR)
    return {
        "cert": os.path.join(base, "admin-cert.pem"),
        "key": os.path.join(base, "admin-key.pem"),
        "ca": os.path.join(base, "tls-ca.pem"),
        "auth_addr": os.path.join(base, "auth-addr"),
    }
