import asyncio, time
import pytest
from teleport.backend.base import Item

@pytest.fixture
async def dumper():
    async def dump():
        await asyncio.sleep(2)
        for t in asyncio.all_tasks():
            print("TASK", t, t.get_loop())
            t.print_stack()
    yield
    d = asyncio.ensure_future(dump())

async def test_dbg(dumper, backend, prefix):
    if "Etcd" in type(backend).__name__: return
    print("loop", asyncio.get_running_loop(), backend._sweeper.get_loop())
    await backend.put(Item(prefix + "e", b"v", expires=time.time() + 3600))
