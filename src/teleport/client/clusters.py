"""Which clusters `tsh` may name with --cluster (pure): today only the one the profile logged in
to; trusted (leaf) clusters join this list when they exist. An unknown cluster is an error,
never a silent fall-back to the local one."""

from __future__ import annotations

from teleport.errors import NotFound


def known_clusters(local: str) -> list[dict[str, str]]:
    """The clusters this proxy serves, as rows of name and status."""
    return [{"name": local, "status": "online", "type": "local"}]


def check_cluster(wanted: str, local: str) -> str:
    """The cluster to use for `--cluster=wanted` ("" = the local one); NotFound when unknown."""
    if not wanted:
        return local
    names = [c["name"] for c in known_clusters(local)]
    if wanted in names:
        return wanted
    raise NotFound(
        f"cluster {wanted!r} is not known to this proxy, which knows {', '.join(map(repr, names))} "
        "('tsh clusters' lists them)"
    )
