"""The syntax of every name that travels in an API path or a backend key, and the one place that
puts such names into paths. Pure (no I/O).

Every caller that builds an auth API path (the proxy, nodes, tsh, tctl) goes through `api_path`,
and every route of the auth API reads its path parameters through `check_name`: a value is
checked against the syntax of its kind and percent-quoted, so that nothing a caller sends can
change which route is reached (`..%2F..%2Fv1%2Fnodes` is not a token).
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Callable
from urllib.parse import quote

from teleport.errors import BadParameter

# User and role names: what people and identity providers use (e-mail addresses, dotted names),
# never a path separator, a control character or white space.
_NAME = re.compile(r"^[A-Za-z0-9_@.+=,~:-]{1,255}$")
# Tokens we issue are hex; static tokens come from teleport.yaml and may use more characters.
_TOKEN = re.compile(r"^[A-Za-z0-9_.~+=-]{1,256}$")
# Session ids are UUIDs (older recordings may use other hex forms).
_SID = re.compile(r"^[0-9a-f-]{8,64}$")  # lower case only: one spelling per session
# A host name or IP address a client names a node by (no wildcards, no spaces or commas).
_HOST_PRINCIPAL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.:-]{0,252})$")
CA_TYPES = ("user", "host", "tls")


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise BadParameter(
            f"invalid {kind} name {_show(value)}: use 1-255 letters, digits and . _ @ + = , ~ : -"
        )
    return value


def check_user_name(value: str) -> str:
    """A user name, or BadParameter saying what a user name may contain."""
    return _check_name("user", value)


# A new user's name: the one rule `tctl users add`, `tctl create` and the API apply. Narrower than
# _NAME (which still reads older records): no ',' (tctl's list separator: `users add $U root,$U`
# with an empty $U must not create "root,"), no '=', '~', ':', and it starts with a letter, digit
# or '_' (never '-', '.' or '@', which read as options or relative names).
_NEW_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_@.+-]{0,254}$")
# An OS login (a principal of the certificate): POSIX's portable user name characters; up to
# defaults.MAX_LOGIN_LENGTH (Linux useradd's limit); never starting with '-'.
_LOGIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_new_user_name(value: str) -> str:
    """The name of a user being created, or BadParameter stating the rule."""
    if not isinstance(value, str) or not _NEW_USER.match(value):
        raise BadParameter(
            f"invalid user name {_show(value)}: use 1-255 letters, digits and . _ @ + -, "
            "starting with a letter, digit or _ (no commas or spaces)"
        )
    return value


def check_login(value: str) -> str:
    """An OS login, or BadParameter stating the rule."""
    from teleport import defaults

    if (not isinstance(value, str) or not _LOGIN.match(value)
            or len(value) > defaults.MAX_LOGIN_LENGTH):
        raise BadParameter(
            f"invalid login {_show(value)}: a login is 1-{defaults.MAX_LOGIN_LENGTH} letters, "
            "digits and . _ -, not starting with . or -"
        )
    return value


def check_logins(values: list[str]) -> list[str]:
    """Logins checked one by one and de-duplicated, in their order (`root,root` is `root`)."""
    out: list[str] = []
    for value in values:
        if check_login(value) not in out:
            out.append(value)
    return out


def check_role_name(value: str) -> str:
    """A role name, or BadParameter saying what a role name may contain."""
    return _check_name("role", value)


def check_token(value: str) -> str:
    """A join or invite token, or BadParameter (a token is never a path)."""
    if not isinstance(value, str) or not _TOKEN.match(value) or value in (".", ".."):
        raise BadParameter(
            f"invalid token {_show(value)}: a token is 1-256 letters, digits and . _ ~ + = -"
        )
    return value


def check_sid(value: str) -> str:
    """A session id, or BadParameter (ids that could escape a directory never pass)."""
    if not isinstance(value, str) or not _SID.match(value):
        raise BadParameter(f"invalid session id {_show(value)}: expected a lower-case UUID")
    return value


def check_host_id(value: str) -> str:
    """A host id (a UUID in its canonical lower-case form), or BadParameter."""
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value:
        # the canonical lower-case form only: two spellings must never name two hosts
        raise BadParameter(f"invalid host id {_show(value)}: expected a lower-case UUID")
    return value


def check_host_principal(value: str) -> str:
    """A host name or IP address to put in a host certificate, or BadParameter."""
    if not isinstance(value, str) or not _HOST_PRINCIPAL.match(value) or ".." in value:
        raise BadParameter(
            f"invalid host name {_show(value)}: expected a host name or an IP address"
        )
    return value


def check_ca_type(value: str) -> str:
    """One of the cluster's CA types, or BadParameter listing them."""
    if value not in CA_TYPES:
        raise BadParameter(
            f"unknown certificate authority type {_show(value)}: expected one of {', '.join(CA_TYPES)}"
        )
    return value


_CLUSTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


def check_cluster(value: str) -> str:
    """A cluster name (letters, digits, '.', '_', '-'), or BadParameter."""
    if not isinstance(value, str) or not _CLUSTER.fullmatch(value):
        raise BadParameter(f"invalid cluster name {_show(value)}: use letters, digits, '.', '_' and '-'")
    return value


# The kinds of path parameters; a route template names its parameters by kind: {user}, {sid}...
CHECKS: dict[str, Callable[[str], str]] = {
    "user": check_user_name,
    "role": check_role_name,
    "token": check_token,
    "sid": check_sid,
    "host_id": check_host_id,
    "ca_type": check_ca_type,
    "cluster": check_cluster,
}

_FORMATTER = string.Formatter()


def check_name(kind: str, value: str) -> str:
    """Check `value` against the syntax of `kind` (a key of CHECKS)."""
    try:
        check = CHECKS[kind]
    except KeyError:
        raise KeyError(f"no syntax is defined for path parameters of kind {kind!r}") from None
    return check(value)


def api_path(template: str, **values: str) -> str:
    """Fill the `{kind}` fields of a route template, each value checked and percent-quoted.

    `api_path("/v1/users/{user}/certs", user="alice")` -> "/v1/users/alice/certs".
    """
    fields = [f for _, f, _, _ in _FORMATTER.parse(template) if f is not None]
    if set(fields) != set(values):
        raise KeyError(f"template {template!r} needs {sorted(fields)}, got {sorted(values)}")
    quoted = {k: quote(check_name(k, v), safe="") for k, v in values.items()}
    return template.format(**quoted)


def _show(value: object) -> str:
    """A caller's value for an error message: bounded, control characters escaped."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
