"""`ppa operator create` and `ppa projections rebuild NAME` as an operator runs them, on both runtimes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_linking.projections import AGENCY_DIRECTORY
from support import settings_env

PPA = str(Path(sys.executable).parent / "ppa")


async def ppa(settings, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, [PPA, *args], env=settings_env(settings), capture_output=True,
                                   text=True, timeout=180)


async def test_operator_create_from_the_command_line(runtime, settings):
    made = await ppa(settings, "operator", "create", "--email", "Ops@Example.jp", "--password", "operator-pass-1")
    assert made.returncode == 0 and "operator created: ops@example.jp" in made.stdout, made.stderr
    again = await ppa(settings, "operator", "create", "--email", "ops@example.jp", "--password", "operator-pass-2")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = await ppa(settings, "operator", "create", "--email", "ops2@example.jp", "--password", "short")
    assert bad.returncode == 2 and "10文字以上" in bad.stderr
    host = build_host(runtime, ["identity"], workers=False)
    await host.start()
    try:
        operator = await host.service("identity").operators.load("ops@example.jp")
        assert operator is not None and operator.password_hash.startswith("$argon2id$")
        assert "operator-pass-1" not in made.stdout + made.stderr
    finally:
        await host.stop()


async def test_projection_rebuild_from_the_command_line_matches_the_live_model(runtime, settings):
    host = build_host(runtime, ["identity", "linking"])
    await host.start()
    try:
        for i in range(4):
            await host.service("identity").create_agency(f"c{i}@example.jp", "password123",
                                                         AgencyProfile(company=f"コマンド{i}"))
        directory = host.service("linking").docs.collection(AGENCY_DIRECTORY)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while await directory.count() < 4 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        live = await directory.find({}, sort=[("email", 1)])
        assert len(live) == 4

        listed = await ppa(settings, "projections", "list")
        assert listed.returncode == 0 and "agency_directory" in listed.stdout and "linking.agency-directory" in listed.stdout
        rebuilt = await ppa(settings, "projections", "rebuild", "agency_directory")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "agency_directory: rebuilt from 4 events (4 applied) and swapped in" in rebuilt.stdout
        assert "4/4" in rebuilt.stderr  # the progress bar's last state
        assert await directory.find({}, sort=[("email", 1)]) == live
        unknown = await ppa(settings, "projections", "rebuild", "nope")
        assert unknown.returncode == 2 and "agency_directory" in unknown.stderr
    finally:
        await host.stop()
