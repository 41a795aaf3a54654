"""`ppa up` as a person runs it: prints the portal URL, answers /healthz, stops on Ctrl-C, keeps state; a worker's
health port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PPA = str(Path(sys.executable).parent / "ppa")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_up(data_dir: Path, port: int, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PPA, "up", "--port", str(port), "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "ready:" in line:
            return proc, line
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("ppa up did not announce its URL")


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status


def test_ppa_up_serves_stops_cleanly_and_keeps_state(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    data = tmp_path / "ppa"
    created = subprocess.run([PPA, "agency", "create", "--email", "first@example.jp", "--password", "password123",
                              "--company", "太陽電力", "--data-dir", str(data)], capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    port = free_port()
    proc, line = run_up(data, port)
    try:
        assert f"http://127.0.0.1:{port}/" in line
        for _ in range(50):
            try:
                if get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/healthz") == 200
        assert get(f"http://127.0.0.1:{port}/livez") == 200 and get(f"http://127.0.0.1:{port}/readyz") == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    again = subprocess.run([PPA, "agency", "create", "--email", "FIRST@example.jp", "--password", "password123",
                            "--company", "重複", "--data-dir", str(data)], capture_output=True, text=True)
    assert again.returncode == 1 and "registered already" in again.stderr
    bad = subprocess.run([PPA, "agency", "create", "--email", "x@example.jp", "--password", "short",
                          "--company", "社", "--data-dir", str(data)], capture_output=True, text=True)
    assert bad.returncode == 2 and "半角英数字8文字以上" in bad.stderr


def _mailed_signup_link(base: str, maildir: Path) -> str:
    """Ask for an agency sign-up on the running server; the link in the mail it writes."""
    import email
    import email.policy
    import re

    import httpx

    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(100):
            try:
                page = client.get("/agency/signup")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        # sent by hand: behind an https PPA_PUBLIC_URL the cookie is Secure, which a client keeps off plain http
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        sent = client.post("/agency/signup", data={"email": "new@example.jp", "csrf_token": token},
                           headers={"cookie": cookie})
        assert sent.status_code == 200 and "送信" in sent.text, sent.text
    for _ in range(200):
        files = list((maildir / "new").glob("*")) if (maildir / "new").is_dir() else []
        if files:
            mail = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
            return re.search(r"(https?://\S+/agency/signup/\S+)", mail.get_body(("plain",)).get_content()).group(1)
        time.sleep(0.1)
    raise AssertionError("no sign-up mail was written")


def test_mail_links_point_to_the_server_that_sent_them_unless_a_public_url_is_given(tmp_path, monkeypatch):
    import os

    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "PPA_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    proc, line = run_up(tmp_path / "own", port)
    try:
        assert f"links in mail: http://127.0.0.1:{port}/" in line
        link = _mailed_signup_link(f"http://127.0.0.1:{port}", tmp_path / "own" / "maildir")
        assert link.startswith(f"http://127.0.0.1:{port}/agency/signup/")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    port = free_port()
    proc, line = run_up(tmp_path / "proxied", port, {**os.environ, "PPA_PUBLIC_URL": "https://portal.example.jp"})
    try:
        assert "links in mail: https://portal.example.jp/" in line
        link = _mailed_signup_link(f"http://127.0.0.1:{port}", tmp_path / "proxied" / "maildir")
        assert link.startswith("https://portal.example.jp/agency/signup/")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_a_worker_serves_liveness_and_readiness_on_its_health_port(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    port = free_port()
    proc = subprocess.Popen([PPA, "worker", "notify", "--health-port", str(port), "--health-host", "127.0.0.1",
                             "--data-dir", str(tmp_path / "ppa")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None and "notify worker running" in proc.stdout.readline()
        for _ in range(100):
            try:
                if get(f"http://127.0.0.1:{port}/readyz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "ok" and body["services"] == ["notify"] and body["dependencies"] == {}
        assert get(f"http://127.0.0.1:{port}/livez") == 200 and get(f"http://127.0.0.1:{port}/healthz") == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_the_operator_resets_an_agencys_password_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    data = str(tmp_path / "ppa")

    def ppa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PPA, "agency", *args, "--data-dir", data], capture_output=True, text=True)

    created = ppa("create", "--email", "shop@example.jp", "--password", "password123", "--company", "太陽電力")
    assert created.returncode == 0, created.stderr
    unknown = ppa("reset-password", "--email", "nobody@example.jp")
    assert unknown.returncode == 1 and "no agency is registered as nobody@example.jp" in unknown.stderr
    weak = ppa("reset-password", "--email", "shop@example.jp", "--password", "short")
    assert weak.returncode == 2 and "半角英数字8文字以上" in weak.stderr
    done = ppa("reset-password", "--email", "shop@example.jp")
    assert done.returncode == 0, done.stderr
    temporary = done.stdout.split("temporary password: ")[1].strip()
    assert len(temporary) == 16 and temporary.isalnum()

    import asyncio

    from ppa_identity.service import IdentityService
    from ppa_runtime.runtime import Runtime
    from ppa_runtime.settings import Settings

    async def authenticates(password: str) -> bool:
        runtime = await Runtime.open(Settings(data_dir=data))
        try:
            identity = IdentityService(runtime)
            await identity.start()
            return await identity.authenticate_agency("shop@example.jp", password) is not None
        finally:
            await runtime.close()

    assert asyncio.run(authenticates(temporary)) and not asyncio.run(authenticates("password123"))
    given = ppa("reset-password", "--email", "shop@example.jp", "--password", "chosen2024")
    assert given.returncode == 0 and "temporary password" not in given.stdout
    assert asyncio.run(authenticates("chosen2024"))


def test_refused_settings_or_an_unreachable_server_stop_ppa_with_one_clear_line(tmp_path):
    import os

    secret = "pw-never-shown-4b2d"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MONGODB_"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="ppa",
               KAFKA_SASL_PASSWORD=secret, PPA_DATA_DIR=str(tmp_path), PPA_SECRET_KEY="k" * 40,
               MONGODB_URI=f"mongodb://ppa:{secret}@127.0.0.1:1/?serverSelectionTimeoutMS=2000")
    refused = subprocess.run([PPA, "worker", "identity"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.startswith("ppa: cannot start: KAFKA_SASL_MECHANISM must be one of PLAIN")
    unreachable = subprocess.run([PPA, "worker", "identity"], env={**env, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 1
    assert "ppa: MongoDB refused or did not answer: 127.0.0.1:1:" in unreachable.stderr
    for run in (refused, unreachable):
        assert "Traceback" not in run.stderr and secret not in run.stderr + run.stdout


def test_with_a_metrics_port_ppa_up_serves_metrics_there_and_not_on_the_public_port(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    port, metrics_port = free_port(), free_port()
    monkeypatch.setenv("PPA_METRICS_PORT", str(metrics_port))
    proc, line = run_up(tmp_path / "ppa", port)
    try:
        assert f"metrics: http://127.0.0.1:{metrics_port}/metrics" in line
        assert get(f"http://127.0.0.1:{port}/livez") == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert refused.value.code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert r.status == 200 and b"ppa_http_request_duration_seconds_bucket" in r.read()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0  # Ctrl-C stops both listeners
    with pytest.raises(OSError):  # and the metrics port is closed with the process
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
