"""One agency sign-up, one trace: a real OpenTelemetry Collector (.ci/otelcol.sh) receives the spans of the split
layout on Kafka + MongoDB — `ppa api gateway`, `ppa worker identity` and `ppa worker notify`, each its own process
exporting over OTLP — and the spans of the request that asks for a sign-up link form one tree, from the HTTP request
(which joins the `traceparent` the client sent) through the event store, the relay's publish and Kafka to the notify
worker's handler and the mail that reaches a real SMTP server. The same holds for `ppa up` on the embedded runtime,
whose log carries the trace context in each event's JSON."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import make_settings, settings_env

PPA = str(Path(sys.executable).parent / "ppa")
LINK_SUBJECT = "[家庭用PPAポータル]新規販売店仮登録のご案内"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds


def collector() -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_ENDPOINT and PPA_TEST_TRACES_FILE from the otelcol.env `.ci/otelcol.sh start` wrote."""
    path = os.environ.get("PPA_TEST_OTELCOL_ENV")
    if path and Path(path).is_file():
        found = dict(re.findall(r"^export (\w+)='([^']*)'$", Path(path).read_text(), re.M))
        if {"OTEL_EXPORTER_OTLP_ENDPOINT", "PPA_TEST_TRACES_FILE"} <= found.keys():
            return found
    reason = "no collector: `bash .ci/otelcol.sh start DIR` and PPA_TEST_OTELCOL_ENV=DIR/otelcol.env"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spans_of(traces_file: Path, trace_id: str) -> list[dict]:
    """Every span of one trace the collector wrote, each with the `service` that sent it."""
    spans = []
    for line in traces_file.read_text(encoding="utf-8").split("\n")[:-1]:  # the last line may be half written
        for resource in json.loads(line).get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in resource["resource"].get("attributes", [])}
            for scope in resource.get("scopeSpans", []):
                spans += [{**s, "service": attrs.get("service.name")} for s in scope.get("spans", [])
                          if s["traceId"] == trace_id]
    return spans


def attribute(span: dict, key: str) -> object:
    for a in span.get("attributes", []):
        if a["key"] == key:
            return next(iter(a["value"].values()))
    return None


def chain_of(span: dict, spans: list[dict]) -> list[dict]:
    """The span and its ancestors among `spans`, the root first."""
    by_id = {s["spanId"]: s for s in spans}
    found = []
    while span is not None:
        found.append(span)
        span = by_id.get(span.get("parentSpanId", ""))
    return found[::-1]


def wait_healthy(url: str, procs: dict[str, subprocess.Popen], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited: {log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200: {log.read_text(errors='replace')[-3000:]}")


# per layout: the processes, and the service that runs the request, the relay and the mail
LAYOUTS = {
    "split": ({"gateway": ["api", "gateway", "--port", "{port}"], "identity": ["worker", "identity"],
               "notify": ["worker", "notify"]}, ("ppa-gateway-api", "ppa-identity-worker", "ppa-notify-worker")),
    "embedded": ({"up": ["up", "--port", "{port}"]}, ("ppa", "ppa", "ppa")),
}


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_one_signup_is_one_trace_from_the_http_request_to_the_mail(layout, inbox, tmp_path, request):
    otel = collector()
    traces = Path(otel["PPA_TEST_TRACES_FILE"])
    port = free_port()
    servers = request.getfixturevalue("servers") if layout == "split" else None
    settings = make_settings("distributed" if servers else "embedded", tmp_path, servers,
                             public_url=f"http://127.0.0.1:{port}")
    commands, (edge, relay, notify) = LAYOUTS[layout]
    env = {**settings_env(settings), "PPA_PUBLIC_URL": settings.public_url, "SMTP_HOST": "127.0.0.1",
           "SMTP_PORT": str(inbox[1]), "OTEL_EXPORTER_OTLP_ENDPOINT": otel["OTEL_EXPORTER_OTLP_ENDPOINT"],
           "OTEL_BSP_SCHEDULE_DELAY": "100"}  # spans leave each process within 0.1 s, not 5 s
    for name in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER"):
        env.pop(name, None)  # each process names itself; every trace is sampled
    log = tmp_path / "processes.log"
    procs = {name: subprocess.Popen([PPA, *(a.format(port=port) for a in args)], env=env, stdout=log.open("ab"),
                                    stderr=subprocess.STDOUT) for name, args in commands.items()}
    try:
        wait_healthy(f"{settings.public_url}/healthz", procs, log)
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        address = f"trace-{secrets.token_hex(4)}@example.jp"
        async with httpx.AsyncClient(base_url=settings.public_url, timeout=30) as client:
            form = await client.get("/agency/signup")
            assert form.status_code == 200, form.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            # the agency's click, in a trace its browser (or a proxy in front) started
            sent = await client.post("/agency/signup", data={"email": address, "csrf_token": token},
                                     headers={"traceparent": f"00-{trace_id}-{client_span}-01"})
            assert sent.status_code == 200, sent.text
        [mailed] = await inbox[0].wait_for(address, LINK_SUBJECT, timeout=90)
        link = re.search(r"(/agency/signup/[A-Za-z0-9_.-]+)", mailed.get_content()).group(1)
        secret = link.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=settings.public_url, timeout=30) as client:
            opened = await client.get(link, headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
            assert opened.status_code == 200, opened.text

        awaited = {"send mail", "publish ppa.identity.agency.v1", "publish ppa.notify.requests.v1"}

        def complete(spans: list[dict]) -> bool:
            """The spans checked below are in, and every span's parent (a parent ends, and is exported, after its
            children): the two requests' server spans are the only ones whose parent is elsewhere."""
            ids = {s["spanId"] for s in spans}
            return (awaited <= {s["name"] for s in spans}
                    and sum(s.get("parentSpanId", "") not in ids for s in spans) == 2)

        deadline = time.monotonic() + 60
        while not complete(spans := spans_of(traces, trace_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    # the link's token is in no span: the request for the link is recorded by its route
    assert secret not in json.dumps(spans)
    [opening] = [s for s in spans if s["name"] == "GET /agency/signup/{token}"]
    assert attribute(opening, "http.route") == "/agency/signup/{token}" and opening["kind"] == SERVER
    spans = [s for s in spans if not chain_of(s, spans)[0] is opening]

    by_id = {s["spanId"]: s for s in spans}
    # one tree: the request's server span is the child of the client's span, every other span has its parent here
    roots = [s for s in spans if s.get("parentSpanId", "") not in by_id]
    assert [(r["name"], r["parentSpanId"], r["kind"]) for r in roots] == [("POST /agency/signup", client_span, SERVER)]
    assert roots[0]["service"] == edge

    def chain(span: dict) -> list[str]:
        names = []
        while span is not None:
            names.append(f"{span['service']}: {span['name']}")
            span = by_id.get(span.get("parentSpanId", ""))
        return names[::-1]

    [mail] = [s for s in spans if s["name"] == "send mail"]
    assert mail["kind"] == CLIENT and attribute(mail, "ppa.mail.template") == "agency_signup_link"
    path = chain(mail)
    # the mail's ancestry, from the request to the delivery, across the three processes
    expected = [f"{edge}: POST /agency/signup", f"{edge}: eventstore append",
                f"{notify}: consume ppa.notify.requests.v1", f"{notify}: handle jp.ppa.notify.email_requested.v1",
                f"{notify}: send mail"]
    assert [p for p in path if p in expected] == expected, path
    assert path[0] == expected[0] and path[-1] == expected[-1], path
    names = {(s["service"], s["name"], s["kind"]) for s in spans}
    # the identity worker's relay published both events of the append, each in this trace
    assert {(relay, f"publish {topic}", PRODUCER)
            for topic in ("ppa.identity.agency.v1", "ppa.notify.requests.v1")} <= names, names
    consume = next(s for s in spans if s["name"] == "consume ppa.notify.requests.v1")
    assert consume["kind"] == CONSUMER and attribute(consume, "messaging.consumer.group.name")
    # the log lines of the request and of the mail carry the trace id: a trace found in the backend leads to them
    lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    logged = {line["event"] for line in lines if line.get("trace_id") == trace_id}
    assert {"agency_signup_requested", "email_sent"} <= logged, logged
    if layout == "split":  # MongoDB commands of the append and of the notify worker's delivery log are in it too
        mongo = {s["service"] for s in spans if attribute(s, "db.system") == "mongodb"
                 or attribute(s, "db.system.name") == "mongodb"}
        assert {edge, notify} <= mongo, names


def test_a_batch_consumer_joins_the_trace_of_each_event_it_applies(tmp_path):
    """Projections apply a fetched batch at once: the batch's work appears in the trace of every event in it."""
    otel = collector()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": otel["OTEL_EXPORTER_OTLP_ENDPOINT"]}
    for name in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("trace_batch_child.py")), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    trace_ids = done.stdout.strip().splitlines()[-1].split()  # after the log lines
    assert len(set(trace_ids)) == 3
    traces = Path(otel["PPA_TEST_TRACES_FILE"])
    deadline = time.monotonic() + 30  # the child flushed at exit; the collector writes within its batch timeout
    while True:
        found = {t: {(s["name"], s["kind"]) for s in spans_of(traces, t)} for t in trace_ids}
        if all(("consume batch probe-batch", CONSUMER) in names for names in found.values()):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    for trace_id in trace_ids:
        spans = {s["name"]: s for s in spans_of(traces, trace_id)}
        assert spans["publish ppa.identity.agency.v1"]["parentSpanId"] == spans["probe request"]["spanId"]
        assert spans["consume batch probe-batch"]["parentSpanId"] == spans["probe request"]["spanId"]
