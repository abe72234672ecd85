"""The leaf's side of the CA exchange: POST our CAs and the root's token to the root's proxy
(`/v1/webapi/trustedclusters/validate`) over HTTPS, get the root's CAs back.

The root's TLS is checked before the token leaves this host: against the pin of the proxy's
certificate (spec.ca_pin, "sha256:" + SHA-256 of its public key) when given, else against the
system's trusted CAs and the host name, as tsh does without --insecure. The request is written on
that very connection, so no second lookup can land somewhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from teleport import defaults
from teleport.errors import AccessDenied, BadParameter, ConnectionProblem, TeleportError
from teleport.trustedcluster.resource import TrustedCluster

VALIDATE_PATH = "/v1/webapi/trustedclusters/validate"


def cert_pin(der: bytes) -> str:
    """"sha256:" + hex SHA-256 of a DER certificate's SubjectPublicKeyInfo."""
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


async def exchange_cas(tc: TrustedCluster, cluster_name: str, cas: dict[str, list[str]]) -> dict[str, Any]:
    """Send our CAs with the token; return the root's {cluster_name, user, host}. Raises
    AccessDenied (token refused, TLS not trusted) or ConnectionProblem with what to do."""
    host, port = _split(tc.web_proxy_addr)
    if tc.ca_pin:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin below is the check
    else:
        ctx = ssl.create_default_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host),
            defaults.TRUSTED_CLUSTER_EXCHANGE_TIMEOUT,
        )
    except ssl.SSLCertVerificationError as exc:
        raise AccessDenied(
            f"the root proxy {tc.web_proxy_addr} has a certificate this host does not trust "
            f"({exc.verify_message}): set spec.ca_pin to its pin (printed by 'tctl tokens add "
            "--type=trusted_cluster' on the root)"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise ConnectionProblem(f"cannot reach the root proxy {tc.web_proxy_addr}: {exc}") from None
    try:
        if tc.ca_pin:
            obj = writer.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            if not der or cert_pin(der) != tc.ca_pin:
                raise AccessDenied(
                    f"the root proxy {tc.web_proxy_addr} presented a certificate that does not "
                    f"match spec.ca_pin: refusing to send it the token"
                )
        body = json.dumps({"token": tc.token, "cluster_name": cluster_name, "cas": cas}).encode()
        writer.write(
            f"POST {VALIDATE_PATH} HTTP/1.1\r\nHost: {tc.web_proxy_addr}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        raw = b""
        while len(raw) < (1 << 20):  # Connection: close: the answer ends at EOF
            more = await asyncio.wait_for(reader.read(1 << 16), defaults.TRUSTED_CLUSTER_EXCHANGE_TIMEOUT)
            if not more:
                break
            raw += more
    except (OSError, TimeoutError) as exc:
        raise ConnectionProblem(f"the CA exchange with {tc.web_proxy_addr} failed: {exc}") from None
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    try:
        data = json.loads(payload)
    except ValueError:
        raise ConnectionProblem(
            f"the root proxy {tc.web_proxy_addr} answered the CA exchange with something that is not "
            f"JSON (status {status[0].decode() if status else '?'}): is it a Teleport proxy's web address?"
        ) from None
    if status != [b"200"]:
        message = (data.get("message") or data.get("error")) if isinstance(data, dict) else None
        err = str(message or data)[:500]
        if status in ([b"403"], [b"401"]):
            raise AccessDenied(f"the root cluster refused the trust request: {err}")
        raise TeleportError(f"the root cluster refused the trust request: {err}")
    if not isinstance(data, dict) or not isinstance(data.get("cluster_name"), str):
        raise BadParameter("the root cluster's answer has no cluster_name")
    return data
