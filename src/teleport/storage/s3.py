"""Session recordings in S3 (``audit_sessions_uri: s3://BUCKET/PREFIX``), shared by every auth server.

Nodes never talk to S3 (they hold no cloud credentials): a node uploads to its auth server as
always, and the auth server streams the recording into a spool (memory, then an unlinked 0600
temporary file) while counting its size, refuses it past ``max_recording_size`` before anything
is sent to S3, and then uploads it:

- once: the object is written with ``If-None-Match: *`` (S3's conditional write), so a second
  upload of the same session, from any auth server, is refused (AlreadyExists); a HEAD before
  spooling refuses the common case early. S3-compatible stores that ignore the condition are
  still guarded by the HEAD (with a race window between two auth servers; AWS S3 has none);
- encrypted at rest: ``ServerSideEncryption: AES256`` unless the URI says ``sse=aws:kms`` (with
  an optional ``sse_kms_key_id``) or ``sse=off`` (for stores without SSE);
- whole: recordings above one part (S3_PART_SIZE) go up as a multipart upload, completed with
  the same condition, and aborted on any failure, so a cut-off upload leaves no object.

Reads (``tsh play``, the web player) go through the auth API as before: auth fetches the object.
The bucket is created when missing (as the original product does).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from teleport import defaults
from teleport.backend.aws import AWSSettings, connection_problem, error_code
from teleport.config.storageuri import SessionsURI
from teleport.errors import ConnectionProblem
from teleport.storage.recordings import (
    RECORDING_SUFFIX,
    RecordingStore,
    already_stored,
    not_recorded,
    recording_too_large,
)
from teleport.types.names import check_sid

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
# S3 answers a failed If-None-Match with 412, or 409 while a concurrent write of the key runs.
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict")


class S3RecordingStore(RecordingStore):
    """Recordings as objects ``<prefix>/<sid>.cast.gz`` in one bucket; see the module docstring."""

    def __init__(
        self,
        settings: AWSSettings,
        uri: SessionsURI,
        max_size: int = defaults.MAX_RECORDING_SIZE,
        part_size: int = defaults.S3_PART_SIZE,
        spool_dir: str | None = None,
    ) -> None:
        super().__init__(max_size)
        self.settings = settings
        self.bucket = uri.bucket
        self.prefix = uri.prefix.strip("/")
        self.sse = uri.sse
        self.kms_key_id = uri.kms_key_id
        self.part_size = max(part_size, 5 * 1024 * 1024)  # S3's minimum for all but the last part
        self.spool_dir = spool_dir
        self._client: Any = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3")

    def open(self) -> S3RecordingStore:
        """Connect and create the bucket when missing (blocking: run it in a thread)."""
        client = self.settings.client("s3")
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if error_code(exc) not in _NOT_FOUND:
                raise connection_problem(f"reading {self.describe()}", exc) from None
            kw: dict[str, Any] = {"Bucket": self.bucket}
            region = client.meta.region_name
            if region and region != "us-east-1":  # us-east-1 refuses a location constraint
                kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                client.create_bucket(**kw)
            except Exception as exc2:
                if error_code(exc2) not in ("BucketAlreadyOwnedByYou",):
                    raise connection_problem(f"creating {self.describe()}", exc2) from None
        self._client = client
        return self

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"the S3 recordings bucket {where} ({self.settings.where()})"

    def key(self, sid: str) -> str:
        name = f"{check_sid(sid)}{RECORDING_SUFFIX}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _sse_args(self) -> dict[str, str]:
        if self.sse == "off":
            return {}
        args = {"ServerSideEncryption": self.sse}
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    # -- writing -----------------------------------------------------------------------------

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def store(
        self, sid: str, chunks: AsyncIterator[bytes], declared_size: int | None = None
    ) -> int:
        """Spool within the size bound, then upload once (see the module docstring)."""
        key = self.key(sid)
        if await self._in_thread(self.exists, sid):
            raise already_stored(sid)
        self._check_declared(sid, declared_size)
        size = 0
        with tempfile.SpooledTemporaryFile(
            max_size=defaults.S3_SPOOL_MEMORY, dir=self.spool_dir
        ) as spool:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_size:
                    raise recording_too_large(sid, size, self.max_size)
                spool.write(chunk)
            spool.seek(0)
            await self._in_thread(self._upload, sid, key, spool, size)
        return size

    def _upload(self, sid: str, key: str, body: IO[bytes], size: int) -> None:
        common = {"Bucket": self.bucket, "Key": key}
        try:
            if size <= self.part_size:
                self._client.put_object(
                    **common, Body=body.read(), IfNoneMatch="*", ContentType="application/gzip",
                    **self._sse_args(),
                )
                return
            upload_id = self._client.create_multipart_upload(
                **common, ContentType="application/gzip", **self._sse_args()
            )["UploadId"]
            try:
                parts = []
                number = 1
                while True:
                    data = body.read(self.part_size)
                    if not data:
                        break
                    etag = self._client.upload_part(
                        **common, UploadId=upload_id, PartNumber=number, Body=data
                    )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
                    number += 1
                self._client.complete_multipart_upload(
                    **common, UploadId=upload_id, MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except BaseException:
                # Nothing half-written may stay behind (and parts cost money until aborted).
                try:
                    self._client.abort_multipart_upload(**common, UploadId=upload_id)
                except Exception:  # noqa: S110 - the first error is the one to report
                    pass
                raise
        except Exception as exc:
            if error_code(exc) in _EXISTS:
                raise already_stored(sid) from None
            if isinstance(exc, ConnectionProblem):
                raise
            raise connection_problem(f"uploading the recording of session {sid} to {self.describe()}",
                                     exc) from None

    # -- reading -----------------------------------------------------------------------------

    def read(self, sid: str) -> bytes:
        key = self.key(sid)
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=key)
            return bytes(obj["Body"].read())
        except Exception as exc:
            if error_code(exc) in _NOT_FOUND:
                raise not_recorded(sid) from None
            raise connection_problem(f"reading session {sid} from {self.describe()}", exc) from None

    def exists(self, sid: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(sid))
            return True
        except Exception as exc:
            if error_code(exc) in _NOT_FOUND:
                return False
            raise connection_problem(f"reading {self.describe()}", exc) from None

    def list_sids(self) -> set[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        out: set[str] = set()
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix):]
                    if "/" not in name and name.endswith(RECORDING_SUFFIX):
                        out.add(name[: -len(RECORDING_SUFFIX)])
        except Exception as exc:
            raise connection_problem(f"listing {self.describe()}", exc) from None
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
