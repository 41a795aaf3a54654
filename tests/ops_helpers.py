"""Helpers for the operators' dashboard tests: operator sign-in, CSRF tokens, waiting for the workers."""

from __future__ import annotations

import asyncio
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
