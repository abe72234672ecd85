"""One conformance suite that every RecordingStore (a directory, S3 on a moto server) passes:
written once (also under a race), size-bounded with nothing kept, whole or absent, read back
exactly; plus what is S3's own: encryption at rest and multipart uploads."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from teleport.backend.aws import AWSSettings
from teleport.config.storageuri import parse_sessions_uri
from teleport.errors import AlreadyExists, BadParameter, NotFound
from teleport.storage.recordings import DirRecordingStore, RecordingStore
from teleport.storage.s3 import S3RecordingStore
from tests.awsmock import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, moto_server

LIMIT = 64 * 1024
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def s3_store(server: MotoServer, uri: str, max_size: int = LIMIT, **kw: Any) -> S3RecordingStore:
    settings = AWSSettings(REGION, ACCESS_KEY, SECRET_KEY, server.endpoint)
    return S3RecordingStore(settings, parse_sessions_uri(uri), max_size, **kw).open()


@pytest.fixture(params=["dir", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordingStore]:
    s: RecordingStore
    if request.param == "dir":
        s = DirRecordingStore(str(tmp_path / "sessions"), LIMIT)
    else:
        s = s3_store(request.getfixturevalue("moto"), f"s3://rec-{uuid.uuid4().hex[:12]}/some/prefix")
    try:
        yield s
    finally:
        s.close()


async def chunks_of(data: bytes, size: int = 4096, fail_after: int | None = None
                    ) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if fail_after is not None and i >= fail_after:
            raise ConnectionResetError("the node went away mid-upload")
        yield data[i:i + size]
        await asyncio.sleep(0)


def sid() -> str:
    return str(uuid.uuid4())


async def test_store_read_and_list(store: RecordingStore) -> None:
    s, data = sid(), os.urandom(10_000) + b"\x00\xff"
    assert not store.exists(s)
    with pytest.raises(NotFound):
        store.read(s)
    assert await store.store(s, chunks_of(data), len(data)) == len(data)
    assert store.exists(s) and store.read(s) == data
    assert store.list_sids() == {s}
    empty = sid()
    assert await store.store(empty, chunks_of(b"")) == 0  # an empty recording is a recording
    assert store.read(empty) == b"" and store.list_sids() == {s, empty}


async def test_written_once(store: RecordingStore) -> None:
    s = sid()
    await store.store(s, chunks_of(b"first"))
    with pytest.raises(AlreadyExists):
        await store.store(s, chunks_of(b"second"))
    assert store.read(s) == b"first"


async def test_racing_uploads_one_wins(store: RecordingStore) -> None:
    s = sid()
    bodies = [bytes([i]) * 20_000 for i in range(4)]

    async def upload(body: bytes) -> bytes | None:
        try:
            await store.store(s, chunks_of(body, 1000))
            return body
        except AlreadyExists:
            return None

    won = [b for b in await asyncio.gather(*(upload(b) for b in bodies)) if b is not None]
    assert len(won) == 1 and store.read(s) == won[0]


async def test_size_bound_keeps_nothing(store: RecordingStore) -> None:
    s = sid()
    with pytest.raises(BadParameter, match="max_recording_size"):
        await store.store(s, chunks_of(b"x" * 10), declared_size=LIMIT + 1)
    with pytest.raises(BadParameter, match="max_recording_size"):
        await store.store(s, chunks_of(b"x" * (LIMIT + 1)))  # no declared size: counted
    assert not store.exists(s) and store.list_sids() == set()
    assert await store.store(s, chunks_of(b"x" * LIMIT)) == LIMIT  # exactly the limit is fine


async def test_cut_off_upload_leaves_nothing(store: RecordingStore) -> None:
    s = sid()
    with pytest.raises(ConnectionResetError):
        await store.store(s, chunks_of(os.urandom(30_000), 1000, fail_after=20_000))
    assert not store.exists(s)
    await store.store(s, chunks_of(b"retried"))  # the node's retry is stored
    assert store.read(s) == b"retried"


async def test_bad_session_id_is_refused(store: RecordingStore) -> None:
    with pytest.raises(BadParameter):
        await store.store("../../etc/passwd", chunks_of(b"x"))
    with pytest.raises(BadParameter):
        store.read("a/b")


# -- S3 only ------------------------------------------------------------------------------------

async def test_s3_objects_are_encrypted_and_multipart_for_large(moto: MotoServer) -> None:
    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    store = s3_store(moto, f"s3://{bucket}/rec", max_size=32 * MiB, part_size=5 * MiB)
    client: Any = moto.client("s3")
    try:
        small, large = sid(), sid()
        await store.store(small, chunks_of(b"small"))
        data = os.urandom(11 * MiB + 7)  # three parts of at most 5 MiB
        assert await store.store(large, chunks_of(data, 256 * 1024)) == len(data)
        assert store.read(large) == data
        for s in (small, large):
            head = client.head_object(Bucket=bucket, Key=f"rec/{s}.cast.gz")
            assert head["ServerSideEncryption"] == "AES256"
        # a multipart object's ETag is "<md5 of the part md5s>-<number of parts>"
        assert client.head_object(Bucket=bucket, Key=f"rec/{large}.cast.gz")["ETag"].endswith('-3"')
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        with pytest.raises(AlreadyExists):
            await store.store(large, chunks_of(data, 256 * 1024))
    finally:
        store.close()


async def test_s3_two_auth_servers_share_recordings(moto: MotoServer) -> None:
    uri = f"s3://rec-{uuid.uuid4().hex[:12]}/shared"
    first, second = s3_store(moto, uri), s3_store(moto, uri)
    try:
        s = sid()
        await first.store(s, chunks_of(b"from the first auth server"))
        assert second.read(s) == b"from the first auth server"
        with pytest.raises(AlreadyExists):
            await second.store(s, chunks_of(b"again"))
    finally:
        first.close()
        second.close()
