"""Before the auth service starts: is the backend the cluster this data_dir has held?

An empty backend on first start is a new cluster. An empty backend under a data_dir where the auth
service has run before (it left tctl's admin identity in ``keys/``) is a lost database: deleted,
truncated, or a storage setting (etcd prefix, dir path) that points elsewhere. Starting anyway would
create new certificate authorities under the same cluster name, which no node, proxy or user
trusts, so we refuse and say how to restore or reset. A CA that is missing or does not load is the
same kind of loss and is refused the same way, one line, no traceback.

The evidence is auth's own: node-only and proxy-only data_dirs hold identities too (``keys/node.json``,
``keys/proxy.json``) but never the admin identity, and they have no backend to lose.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography import x509

from teleport import defaults
from teleport.auth.store import ClusterStore
from teleport.ca import keys as cakeys
from teleport.errors import ConnectionProblem, NotFound, TeleportError

CA_TYPES = ("user", "host", "tls")
# Files only the auth service writes (service/process.py _write_admin_identity).
AUTH_EVIDENCE = ("admin-cert.pem", "tls-ca.pem")


class ClusterStateError(TeleportError):
    """The backend does not hold (or cannot give back) the cluster this data_dir belongs to."""


def storage_location(storage: dict[str, Any], data_dir: str) -> str:
    """Where the cluster state lives, for messages: the SQLite file, the etcd peers and prefix,
    or the DynamoDB table."""
    kind = storage.get("type") or defaults.STORAGE_TYPE
    if kind == "dynamodb":
        where = f"region {storage['region']}" if storage.get("region") else "the default region"
        if storage.get("endpoint"):
            where += f" at {storage['endpoint']}"
        return f"DynamoDB table {storage.get('table_name') or defaults.DYNAMODB_TABLE!r} ({where})"
    if kind == "etcd":
        peers = storage.get("peers")
        peers = ", ".join(peers) if isinstance(peers, list) else str(peers)
        return f"etcd ({peers}) under prefix {storage.get('prefix') or defaults.ETCD_PREFIX!r}"
    return os.path.join(str(storage.get("path") or data_dir), defaults.SQLITE_FILE)


def auth_evidence(data_dir: str) -> str | None:
    """A file showing the auth service has run with this data_dir, or None."""
    for name in AUTH_EVIDENCE:
        path = os.path.join(data_dir, defaults.ADMIN_IDENTITY_DIR, name)
        if os.path.exists(path):
            return path
    return None


def _what_to_do(where: str, data_dir: str) -> str:
    if where.endswith(defaults.SQLITE_FILE):
        restore = f"stop teleport and copy a backup of {os.path.basename(where)} to {where}"
    elif where.startswith("DynamoDB"):
        restore = ("restore that table from a DynamoDB backup (or point-in-time recovery), or fix "
                   "teleport.storage.table_name if it points elsewhere")
    else:
        restore = "restore that etcd data from a backup, or fix teleport.storage if it points elsewhere"
    return (
        f"to restore the cluster, {restore}; to start a new cluster instead, move {data_dir} aside, "
        "start again and re-join every node and proxy with a new token"
    )


def _lost(where: str, data_dir: str, evidence: str, what: str) -> ClusterStateError:
    return ClusterStateError(
        f"{what}, but this data_dir has held a cluster ({evidence} exists): the cluster state was "
        f"deleted, emptied or replaced, and starting would create new certificate authorities "
        f"that no member trusts; {_what_to_do(where, data_dir)}"
    )


def _damaged(where: str, data_dir: str, what: str, exc: BaseException) -> ClusterStateError:
    # The first sentence of the cause is enough to recognise it; the rest is library detail.
    detail = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0]
    return ClusterStateError(f"{where}: {what} cannot be read ({detail}); {_what_to_do(where, data_dir)}")


def check_ca(ca_type: str, spec: dict[str, Any]) -> None:
    """Load a CA's keys the way the auth server will; raises on anything unusable."""
    signing, checking = spec.get("signing_keys"), spec.get("checking_keys")
    if not signing or not checking or not isinstance(signing[0], str):
        raise ValueError("it has no signing or checking key")
    cakeys.load_private_key(signing[0].encode())
    if ca_type == "tls":
        x509.load_pem_x509_certificate(str(checking[0]).encode())


async def check_cluster_state(store: ClusterStore, data_dir: str, where: str) -> None:
    """Refuse (ClusterStateError, one line) to start auth on a backend that lost or damaged the
    cluster this data_dir has held; return quietly on a first start or a sound backend."""
    evidence = auth_evidence(data_dir)
    try:
        name: str | None = await store.get_cluster_name()
    except NotFound:
        name = None
    except ConnectionProblem:
        raise  # storage unreachable (etcd down): its own message says so; nothing is lost
    except Exception as exc:  # a damaged database surfaces as the driver's own error types
        raise _damaged(where, data_dir, "the cluster name", exc) from None
    if name is None:
        if evidence is not None:
            raise _lost(where, data_dir, evidence, f"{where} holds no cluster")
        return  # first start: AuthServer.init creates the cluster
    for ca_type in CA_TYPES:
        what = f"the {ca_type} certificate authority of cluster {name!r}"
        try:
            ca = await store.get_ca(ca_type)
        except NotFound:
            if evidence is not None:
                raise _lost(where, data_dir, evidence, f"{where} has lost {what}") from None
            continue  # a first start cut short: AuthServer.init finishes it
        except ConnectionProblem:
            raise
        except Exception as exc:
            raise _damaged(where, data_dir, what, exc) from None
        try:
            check_ca(ca_type, ca.spec)
        except Exception as exc:
            raise _damaged(where, data_dir, what, exc) from None
