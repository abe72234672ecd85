"""The auth service's logic: CA custody, users and invites, login, join tokens, host identities.

One class joins the parts, each in its own module: auth/core.py (CAs, identities, a user's roles),
auth/users.py, auth/login.py, auth/mfa.py (security keys), auth/hosts.py and auth/rotation.py. auth/api.py exposes it over mutual TLS.
"""

from __future__ import annotations

from teleport.auth.core import CA_TYPES, StaticToken
from teleport.auth.hosts import (
    HostIdentity,
    host_identity_from_dict,
    host_identity_to_dict,
)
from teleport.auth.login import NO_LOGIN_PRINCIPAL, LoginResult, clamp_ttl
from teleport.auth.mfa import MFAMixin
from teleport.auth.rotation import RotationMixin
from teleport.auth.sso.flow import SSOMixin
from teleport.auth.trust import TrustMixin
from teleport.auth.users import UsersMixin, check_traits, server_labels

__all__ = [
    "CA_TYPES",
    "NO_LOGIN_PRINCIPAL",
    "AuthServer",
    "HostIdentity",
    "LoginResult",
    "StaticToken",
    "check_traits",
    "clamp_ttl",
    "host_identity_from_dict",
    "host_identity_to_dict",
    "server_labels",
]


class AuthServer(UsersMixin, MFAMixin, RotationMixin, SSOMixin, TrustMixin):
    """Holds the cluster's CAs and state; every method is an action the API authorizes first."""
