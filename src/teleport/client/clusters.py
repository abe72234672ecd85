"""Which clusters `tsh` may name with --cluster (pure): the one the profile logged in to and the
trusted (leaf) clusters its proxy announces. An unknown cluster is an error, never a silent
fall-back to the local one."""

from __future__ import annotations

from teleport.errors import NotFound


def known_clusters(local: str, leaves: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """The clusters this proxy serves, as rows of name and status (and type)."""
    rows = [{"name": local, "status": "online", "type": "local"}]
    rows += [{"name": str(c["name"]), "status": str(c.get("status", "offline")), "type": "leaf"}
             for c in leaves or [] if c.get("name") != local]
    return rows


def check_cluster(wanted: str, local: str, leaves: list[dict[str, str]] | None = None) -> str:
    """The cluster to use for `--cluster=wanted` ("" = the local one); NotFound when unknown."""
    if not wanted:
        return local
    names = [c["name"] for c in known_clusters(local, leaves)]
    if wanted in names:
        return wanted
    raise NotFound(
        f"cluster {wanted!r} is not known to this proxy, which knows {', '.join(map(repr, names))} "
        "('tsh clusters' lists them)"
    )
