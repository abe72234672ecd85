"""A user's roles evaluated together: logins, node access, options and API rules. Pure module.

Node access (as in the original product's CheckAccessToServer):
- deny first, and deny wins: a role's deny conditions match a (login, node) when the login is in
  its deny logins (on any node) OR its deny node_labels select the node (for any login);
- then allow: one role must list the login in its allow logins AND select the node with its allow
  node_labels.
Logins and label values are compared after template expansion from the user's traits.
A node is visible (`can_see_node`) when at least one login would be allowed on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from teleport.errors import AccessDenied
from teleport.rbac.labels import Selector, format_labels, match_labels, matches_all
from teleport.rbac.templates import expand_all
from teleport.types.role import Role, Rule


def _valid_login(login: str) -> bool:
    # A trait value such as "John Smith" cannot be an OS login nor a certificate principal.
    return bool(login) and not any(c.isspace() or ord(c) < 32 or c == "," for c in login)


def _expand_selector(selector: Selector, traits: dict[str, list[str]]) -> Selector:
    # A key whose values all drop out keeps an empty list, which selects no node.
    return {key: expand_all(values, traits) for key, values in selector.items()}


@dataclass(frozen=True)
class _Expanded:
    """One role with its templates expanded for this user."""

    role: Role
    allow_logins: tuple[str, ...]
    allow_labels: Selector
    deny_logins: frozenset[str]
    deny_labels: Selector


class RoleSet:
    """The roles of one user, with that user's traits, evaluated as a whole."""

    def __init__(self, roles: list[Role], traits: dict[str, list[str]] | None = None) -> None:
        self.roles = list(roles)
        self.traits = {k: list(v) for k, v in (traits or {}).items()}
        self._expanded = [self._expand(role) for role in self.roles]

    def _expand(self, role: Role) -> _Expanded:
        return _Expanded(
            role=role,
            allow_logins=tuple(
                x for x in expand_all(role.allow.logins, self.traits) if _valid_login(x)
            ),
            allow_labels=_expand_selector(role.allow.node_labels, self.traits),
            deny_logins=frozenset(expand_all(role.deny.logins, self.traits)),
            deny_labels=_expand_selector(role.deny.node_labels, self.traits),
        )

    def __repr__(self) -> str:
        return f"RoleSet({self.names!r})"

    @property
    def names(self) -> list[str]:
        """The role names, in the order given."""
        return [role.name for role in self.roles]

    # logins and nodes ----------------------------------------------------------------------
    def _denied_everywhere(self) -> set[str] | None:
        """Logins denied on every node; None when a deny selects every node (all denied)."""
        denied: set[str] = set()
        for exp in self._expanded:
            if matches_all(exp.deny_labels):
                return None
            denied |= exp.deny_logins
        return denied

    def logins(self) -> list[str]:
        """Allowed logins (expanded, deduplicated, in order) minus those denied on every node:
        the certificate's principals."""
        denied = self._denied_everywhere()
        if denied is None:
            return []
        seen: dict[str, None] = {}
        for exp in self._expanded:
            for login in exp.allow_logins:
                if login not in denied:
                    seen.setdefault(login, None)
        return list(seen)

    def _deny_reason(self, login: str, labels: dict[str, str]) -> str | None:
        for exp in self._expanded:
            if login in exp.deny_logins:
                return f"role {exp.role.name!r} denies login {login!r}"
            if match_labels(exp.deny_labels, labels):
                return f"role {exp.role.name!r} denies access to nodes with these labels"
        return None

    def check_login(self, login: str, node_labels: dict[str, str]) -> None:
        """Raise AccessDenied unless `login` is allowed on a node with `node_labels`."""
        where = f"access denied to login {login!r} on node with labels [{format_labels(node_labels)}]"
        reason = self._deny_reason(login, node_labels)
        if reason is not None:
            raise AccessDenied(f"{where}: {reason}")
        with_login = [exp for exp in self._expanded if login in exp.allow_logins]
        if any(match_labels(exp.allow_labels, node_labels) for exp in with_login):
            return
        if not self.roles:
            raise AccessDenied(f"{where}: the user has no roles")
        if not with_login:
            allowed = ", ".join(self.logins()) or "none"
            raise AccessDenied(
                f"{where}: no role allows login {login!r} (allowed logins: {allowed})"
            )
        names = ", ".join(repr(exp.role.name) for exp in with_login)
        raise AccessDenied(
            f"{where}: the roles that allow login {login!r} ({names}) do not select this node "
            "with their node_labels"
        )

    def allows_login(self, login: str, node_labels: dict[str, str]) -> bool:
        """check_login as a boolean."""
        try:
            self.check_login(login, node_labels)
        except AccessDenied:
            return False
        return True

    def can_see_node(self, node_labels: dict[str, str]) -> bool:
        """True when at least one login would be allowed on a node with these labels (the rule
        used to filter node listings)."""
        denied: set[str] = set()
        for exp in self._expanded:
            if match_labels(exp.deny_labels, node_labels):
                return False
            denied |= exp.deny_logins
        return any(
            match_labels(exp.allow_labels, node_labels)
            and any(login not in denied for login in exp.allow_logins)
            for exp in self._expanded
        )

    # options -----------------------------------------------------------------------------
    def adjust_session_ttl(self, requested: float) -> float:
        """The smallest of the requested TTL and every role's max_session_ttl (seconds)."""
        return min([float(requested)] + [r.options.max_session_ttl for r in self.roles])

    def permit_port_forwarding(self) -> bool:
        """Port forwarding is permitted unless every role forbids it (False with no roles)."""
        return any(r.options.port_forwarding for r in self.roles)

    def permit_agent_forwarding(self) -> bool:
        """Agent forwarding is permitted when any role allows it."""
        return any(r.options.forward_agent for r in self.roles)

    def permit_x11_forwarding(self) -> bool:
        """X11 forwarding is permitted when any role allows it."""
        return any(r.options.permit_x11_forwarding for r in self.roles)

    def client_idle_timeout(self) -> float:
        """The shortest non-zero idle timeout in seconds; 0 means never time out."""
        return _min_nonzero([r.options.client_idle_timeout for r in self.roles])

    def disconnect_expired_cert(self) -> bool:
        """Close sessions when the certificate expires, if any role asks for it."""
        return any(r.options.disconnect_expired_cert for r in self.roles)

    def max_connections(self) -> int:
        """The smallest non-zero max_connections; 0 means unlimited."""
        return int(_min_nonzero([r.options.max_connections for r in self.roles]))

    def max_sessions(self) -> int:
        """The smallest non-zero max_sessions (per connection); 0 means unlimited."""
        return int(_min_nonzero([r.options.max_sessions for r in self.roles]))

    def cert_format(self) -> str:
        """The most permissive certificate format: 'oldssh' if any role asks for it."""
        formats = {r.options.cert_format for r in self.roles}
        return "oldssh" if "oldssh" in formats else "standard"

    # API rules ---------------------------------------------------------------------------
    def check_rule(self, resource: str, verb: str) -> None:
        """Raise AccessDenied unless some allow rule grants verb on resource and no deny rule
        forbids it (deny rules are checked first)."""
        denied = AccessDenied(f"access denied to perform action {verb!r} on {resource!r}")
        for role in self.roles:
            if any(rule.matches(resource, verb) for rule in role.deny.rules):
                # A deny `where` cannot be evaluated here: it applies unconditionally.
                raise denied
        for role in self.roles:
            if any(_grants(rule, resource, verb) for rule in role.allow.rules):
                return
        raise denied

    def allows_rule(self, resource: str, verb: str) -> bool:
        """check_rule as a boolean."""
        try:
            self.check_rule(resource, verb)
        except AccessDenied:
            return False
        return True


def _grants(rule: Rule, resource: str, verb: str) -> bool:
    # An allow rule with a `where` condition needs a context this layer does not have: no grant.
    return not rule.where and rule.matches(resource, verb)


def _min_nonzero(values: list[float] | list[int]) -> float:
    nonzero = [float(v) for v in values if v]
    return min(nonzero) if nonzero else 0.0
