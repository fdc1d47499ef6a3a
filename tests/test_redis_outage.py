"""Redis is only an accelerator: while it is down, two processes still behave as one desk (they poll the
database), nothing accepted is lost, and when Redis returns they go back to it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support import (
    Desk,
    ServerPool,
    assert_gapless,
    claim,
    context_bundle,
    create_conversation,
    escalate,
    free_port,
    mentions,
    post_message,
    read,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WAIT_S = 20


class PrivateRedis:
    """A redis-server of this test's own, so that stopping it disturbs nobody else."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


async def bus_state(desk: Desk, wanted: str) -> None:
    async with httpx.AsyncClient(base_url=desk.server.url, timeout=5) as client:
        async with asyncio.timeout(WAIT_S):
            while (await client.get("/healthz")).json()["bus"] != wanted:
                await asyncio.sleep(0.05)  # polling a condition under a deadline


async def test_messages_flow_while_redis_is_down_and_after_it_returns(
    postgres_url: str, server: ServerPool, private_redis: PrivateRedis
) -> None:
    env = {"DESK_REDIS_URL": private_redis.url}
    a = Desk(server(postgres_url, env=env))
    b = Desk(server(postgres_url, env=env))
    await bus_state(a, "ok")
    await bus_state(b, "ok")
    integration = a.integration()
    agent = b.staff("agent", name="Olga Outage")

    async with a.api(integration.token) as ai, b.api(agent.token) as staff, b.staff_socket(agent.token) as agent_ws:
        created = await create_conversation(ai)
        cid = created["id"]
        await escalate(ai, context_bundle(conversation_id=cid))
        await claim(staff, cid)
        async with a.chat(created["customer_token"]) as customer:
            await customer.status("assigned")

            private_redis.stop()
            await bus_state(a, "degraded")
            for index in range(3):
                await post_message(staff, cid, f"while redis is down {index}")
                await customer.message(f"while redis is down {index}")
                await customer.say(f"customer while down {index}")
                await agent_ws.event("message.created", cid, mentions(f"customer while down {index}"))

            private_redis.start()
            await bus_state(a, "ok")
            await bus_state(b, "ok")
            await post_message(staff, cid, "redis is back")
            await customer.message("redis is back")

            texts = [frame["text"] for frame in customer.messages()]
            assert len(texts) == len(set(texts)), f"a message arrived twice: {texts}"

        conversation = await read(ai, cid)
        assert_gapless(conversation)
        stored = [m["text"] for m in conversation["messages"]]
        for index in range(3):
            assert f"while redis is down {index}" in stored
            assert f"customer while down {index}" in stored
        assert "redis is back" in stored
