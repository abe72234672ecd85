"""What the conformance suite cannot show about DynamoDB: several auth servers on one table
(one counter, watches that see the others' writes, expiry of items someone else wrote), the
table created when missing and a foreign table refused, and open_backend from teleport.yaml."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from teleport.backend import Item, open_backend
from teleport.backend.base import EventType
from teleport.backend.dynamodb import DynamoDBBackend
from teleport.errors import AlreadyExists, CompareFailed, ConfigError, ConnectionProblem
from tests.awsmock import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from tests.unit.backend.conftest import dynamo_settings


def table() -> str:
    return f"teleport-{uuid.uuid4().hex[:12]}"


async def test_two_servers_share_one_table(moto: MotoServer) -> None:
    name = table()
    a = await DynamoDBBackend.open(dynamo_settings(moto), name, poll_interval=0.1)
    b = await DynamoDBBackend.open(dynamo_settings(moto), name, poll_interval=0.1,
                                   sweep_scan_interval=0.5)
    try:
        async with b.watch(["/x/"]) as w:
            it = aiter(w)
            first = await a.put(Item("/x/1", b"one"))
            second = await b.put(Item("/x/2", b"two"))  # b's guess of the counter was stale
            assert second.revision == first.revision + 1  # one gapless order for both
            ev = await asyncio.wait_for(anext(it), 10)
            assert (ev.type, ev.item.key, ev.item.value) == (EventType.PUT, "/x/1", b"one")
            ev = await asyncio.wait_for(anext(it), 10)
            assert ev.item.key == "/x/2"
            with pytest.raises(AlreadyExists):
                await b.create(Item("/x/1", b"mine"))
            current = await b.get("/x/1")
            await a.compare_and_swap(current, Item("/x/1", b"a-won"))
            with pytest.raises(CompareFailed):  # b's copy is stale now
                await b.compare_and_swap(current, Item("/x/1", b"b-lost"))
            # an item a wrote expires; b (which never saw it written) sweeps it and tells watchers
            await a.put(Item("/x/ttl", b"t", expires=time.time() + 0.5))
            seen = []
            while ("/x/ttl", EventType.DELETE) not in seen:
                ev = await asyncio.wait_for(anext(it), 10)
                seen.append((ev.item.key, ev.type))
    finally:
        await a.close()
        await b.close()


async def test_table_created_with_ttl_and_foreign_table_refused(moto: MotoServer) -> None:
    client: Any = moto.client("dynamodb")
    name = table()
    backend = await DynamoDBBackend.open(dynamo_settings(moto), name)
    await backend.close()
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "TTL" and ttl["TimeToLiveStatus"] == "ENABLED"
    other = table()
    client.create_table(
        TableName=other, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    with pytest.raises(ConfigError, match="teleport.storage.table_name: .* is not a teleport table"):
        await DynamoDBBackend.open(dynamo_settings(moto), other)


async def test_open_backend_from_config(moto: MotoServer) -> None:
    storage = {"type": "dynamodb", "region": REGION, "table_name": table(),
               "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "endpoint": moto.endpoint}
    backend = await open_backend(storage, "/nonexistent")
    try:
        assert isinstance(backend, DynamoDBBackend)
        await backend.put(Item("/k", b"v"))
    finally:
        await backend.close()


async def test_unreachable_endpoint_is_a_connection_problem_without_secrets() -> None:
    from tests.helpers import free_port

    storage = {"type": "dynamodb", "region": REGION, "table_name": table(),
               "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
               "endpoint": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(ConnectionProblem) as info:
        await open_backend(storage, "/nonexistent")
    assert "DynamoDB" in str(info.value) and SECRET_KEY not in str(info.value)
