"""Each install signs with a key of its own: generated on the first `ppa up`, kept in the data dir, never shown;
processes on Kafka + MongoDB refuse to start without one."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ppa_runtime.auth import issue_agency_token

PPA = str(Path(sys.executable).parent / "ppa")
# the key every install used to sign with when none was configured (it was in the source)
FORMER_BUILT_IN_KEY = "dev-only-insecure-secret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_env(**extra: str) -> dict[str, str]:
    drop = {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "PPA_SECRET_KEY", "PPA_SECRET_KEY_PREVIOUS", "PPA_ENV"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def start(data: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([PPA, "up", "--port", str(port), "--data-dir", str(data)], env=plain_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        lines.append(proc.stdout.readline())
        if "ready:" in lines[-1]:
            return proc, lines
    proc.kill()
    raise AssertionError(f"ppa up did not start: {lines}")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_first_up_generates_a_private_key_says_where_and_keys_from_the_source_impersonate_no_one(tmp_path):
    data = tmp_path / "ppa"
    created = subprocess.run([PPA, "agency", "create", "--email", "first@example.jp", "--password", "password123",
                              "--company", "太陽電力", "--data-dir", str(data)], env=plain_env(),
                             capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    key_file = data / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600

    port = free_port()
    proc, lines = start(data, port)
    try:
        assert f"signing key: kept in {key_file.resolve()} (mode 0600)\n" in lines
        body = urllib.parse.urlencode({"username": "first@example.jp", "password": "password123"}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/auth/token", body, timeout=10) as r:
            token = json.load(r)["access_token"]
        payload = token.split(".")[0]  # readable by anyone (docs/security.md): the agency id is no secret
        agency_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["a"]
        customers = f"http://127.0.0.1:{port}/api/v1/customers"
        assert status(customers, token) == 200
        for forged_with in (FORMER_BUILT_IN_KEY, "x" * 48):
            forged = issue_agency_token([forged_with], agency_id, "first@example.jp", 0)
            assert status(customers, forged) == 401
    finally:
        err = stop(proc)
    assert key not in "".join(lines) + err  # the path is said, never the key

    proc, lines = start(data, port)  # a restart reads the same key: the token issued before still works
    try:
        assert key_file.read_text().strip() == key
        assert status(customers, token) == 200
    finally:
        stop(proc)


def test_a_fresh_data_dir_says_it_generated_its_key_and_two_installs_differ(tmp_path):
    keys = []
    for name in ("one", "two"):
        proc, lines = start(tmp_path / name, free_port())
        stop(proc)
        key_file = (tmp_path / name / "secret_key").resolve()
        assert f"signing key: generated now, kept in {key_file} (mode 0600)\n" in lines
        keys.append(key_file.read_text())
    assert keys[0] != keys[1]


@pytest.mark.parametrize("command", [["up"], ["api", "gateway"], ["worker", "billing"]])
def test_processes_on_kafka_and_mongodb_refuse_to_start_without_a_key(tmp_path, command):
    env = plain_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", MONGODB_URI="mongodb://127.0.0.1:9/")
    done = subprocess.run([PPA, *command, "--data-dir", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "ppa: cannot start: PPA_SECRET_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "secret_key").exists()  # no key of its own: it would differ from the other processes'
