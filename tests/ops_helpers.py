"""Helpers for the operators' dashboard tests: operator sign-in, CSRF tokens, waiting for the workers, a broken
record on a topic."""

from __future__ import annotations

import asyncio
import json
import re

OPERATOR_EMAIL = "ops@example.jp"
OPERATOR_PASSWORD = "operator-pass-1"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def sign_in_operator(client, identity, email: str = OPERATOR_EMAIL, password: str = OPERATOR_PASSWORD) -> str:
    """Create an operator and sign the client in through /ops/login; returns the session's CSRF token."""
    await identity.operators.create(email, password)
    form = await client.get("/ops/login")
    done = await client.post("/ops/login", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)})
    assert done.status_code == 303 and done.headers["location"] == "/ops/events", done.text
    return csrf_of((await client.get("/ops/health")).text)


async def wait_until(check, timeout: float = 60.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


async def publish_broken(runtime, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    """Put a record that is no valid event on a topic, as a foreign or faulty producer could."""
    bus = runtime.bus
    if hasattr(bus, "producer"):  # Kafka: binary mode, as sent
        await bus.producer.send_and_wait(bus.physical(topic), value=value, key=key.encode(), headers=headers)
        return
    document = {k[3:]: v.decode() for k, v in headers if k.startswith("ce_")} | {"data": value.decode(errors="replace")}

    def run(conn) -> None:  # the embedded log: structured mode
        row = conn.execute("SELECT MAX(offset) FROM log WHERE topic = ? AND partition = 0", (topic,)).fetchone()
        conn.execute("INSERT INTO log (topic, partition, offset, key, envelope, at) VALUES (?, 0, ?, ?, ?, 0)",
                     (topic, (-1 if row[0] is None else row[0]) + 1, key, json.dumps(document)))

    await bus.db.write(run)
