"""Tracer bullet: identity's command → event store → outbox relay → bus → linking's projection,
with the projection worker killed mid-stream and restarted; every event lands exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from support import settings_env

from ppa_contracts.identity import AgencyProfile
from ppa_identity.service import IdentityService
from ppa_linking.projections import AGENCY_DIRECTORY
from ppa_runtime.runtime import Runtime

PPA = str(Path(sys.executable).parent / "ppa")
AGENCIES = 40


def start_worker(service: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([PPA, "worker", service], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def wait_for(predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_agency_events_reach_linking_exactly_once_across_a_killed_worker(settings, tmp_path):
    env = settings_env(settings)
    log = tmp_path / "workers.log"
    runtime = await Runtime.open(settings)
    identity = IdentityService(runtime)
    directory = runtime.docstore("linking").collection(AGENCY_DIRECTORY)
    relay = start_worker("identity", env, log)
    linking = start_worker("linking", env, log)
    try:
        for i in range(AGENCIES):
            await identity.create_agency(f"agency{i}@example.jp", "password123", AgencyProfile(company=f"販売店{i}"))

        async def some_applied() -> bool:
            return await directory.count() >= 5

        await wait_for(some_applied)
        linking.send_signal(signal.SIGKILL)  # mid-stream: no clean shutdown, no final commit
        linking.wait(timeout=10)
        partial = await directory.count()
        assert partial < AGENCIES or os.environ.get("PPA_ALLOW_FAST_WORKER"), "worker finished before the kill"
        linking = start_worker("linking", env, log)

        async def all_applied() -> bool:
            return await directory.count() == AGENCIES

        await wait_for(all_applied)
        await asyncio.sleep(1.0)  # give any redelivery the chance to double-apply
        docs = await directory.find({}, sort=[("email", 1)])
        assert len(docs) == AGENCIES
        assert {d["applied_events"] for d in docs} == {1}
        assert sorted(d["email"] for d in docs) == sorted(f"agency{i}@example.jp" for i in range(AGENCIES))
    finally:
        for proc in (relay, linking):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        await runtime.close()
    assert relay.returncode == 0, log.read_text()[-3000:]
