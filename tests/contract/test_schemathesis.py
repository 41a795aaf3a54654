"""The published OpenAPI document against a real `ppa up`, on both runtimes: schemathesis runs every check and every
phase, the stateful one included, with an agency's bearer token and a device's auth code. Any server error, any
response the document does not describe, any bad input that is accepted fails the test (and CI)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import settings_env

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")
EMAIL, PASSWORD = "contract@example.jp", "contractpass1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([BIN / "ppa", "up", "--port", str(port)], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(encoding="utf-8")[-4000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("ppa up did not become ready:\n" + log.read_text(encoding="utf-8")[-4000:])


# Examples per operation and phase, and the phases: every one on the embedded runtime. On Kafka + MongoDB each request
# is slower (a round trip to MongoDB, often several), so there the schema's examples and the coverage phase's boundary
# and invalid values of every parameter and field are sent (about 2 minutes), not the random fuzzing and stateful
# phases, whose route code is the same on both runtimes (CI time).
EXAMPLES = {"embedded": "25", "distributed": "5"}
PHASES = {"embedded": "examples,coverage,fuzzing,stateful", "distributed": "examples,coverage"}


@pytest.mark.timeout(600)
def test_the_api_keeps_its_openapi_contract(settings, runtime_kind, tmp_path):
    env = settings_env(settings)
    created = subprocess.run([BIN / "ppa", "agency", "create", "--email", EMAIL, "--password", PASSWORD,
                              "--company", "契約検証電力"], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(env, port, tmp_path / "ppa.log")
    try:
        token = httpx.post(f"{base}/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD},
                           timeout=60).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        customer = httpx.post(f"{base}/api/v1/customers", headers=bearer, json={
            "customer_number": "1100000001", "serial_number": "SN-CONTRACT-1", "name": "契約 太郎",
            "base_fee": "1000", "sell_unit_price": "8", "usage_unit_price": "20"}, timeout=60)
        assert customer.status_code == 201, customer.text
        # a month of usage, so that invoices exist for the invoice operations (and the links between them)
        readings = [{"at": f"2024-01-{day:02d}T00:00:00+09:00", "channel": channel, "kwh": f"{day * rate}.000"}
                    for day in range(1, 11) for channel, rate in (("pv_generation", 12), ("grid_export", 5),
                                                                   ("grid_import", 3))]
        pushed = httpx.post(f"{base}/api/v1/devices/SN-CONTRACT-1/readings", json={"readings": readings},
                            headers={"Authorization": f"Bearer {customer.json()['auth_code']}"}, timeout=60)
        assert pushed.status_code == 202 and pushed.json()["accepted"] == len(readings), pushed.text
        report = tmp_path / "schemathesis.log"  # written as it runs: a slow run can be watched
        with report.open("w", encoding="utf-8") as out:
            st = subprocess.run(
                [BIN / "st", "--config-file", CONFIG, "--no-color", "run", f"{base}/openapi.json", "--url", base,
                 "--max-examples", EXAMPLES[runtime_kind], "--phases", PHASES[runtime_kind]],
                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                env={**env, "PPA_ST_AGENCY_TOKEN": token["access_token"], "PPA_ST_SERIAL": "SN-CONTRACT-1",
                     "PPA_ST_DEVICE_CODE": customer.json()["auth_code"], "COLUMNS": "160"}, timeout=480)
        assert st.returncode == 0, report.read_text(encoding="utf-8")[-30000:]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
