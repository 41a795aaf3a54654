"""bench/bus — events per second through the EventBus port, each way, on the embedded log or on Kafka.

Three patterns, each bounded by a count and by `--seconds`, on a topic namespace of its own (loopback only):

- device: what the device API does per accepted batch: one `ReadingBatchAccepted` of 144 readings (about
  12.8 KB) per awaited `publish`, `--publishers` of them at once (requests in flight), keyed by serial;
- relay: what an outbox relay does: lists of `--list` small events (`DailyUsageComputed`, about 600 bytes)
  per awaited `publish`, one relay;
- consume: per topic, one consumer group member reading what was published, `fetch(0.5, 500)` then `commit`
  of the fetched records, as `ppa_runtime.consumer.Consumer` does (it reads each record's type too).

Prints one JSON document (events/s and MB/s each way, event sizes, counts, seconds, the settings used).

    uv run python bench/bus.py --runtime embedded
    uv run python bench/bus.py --runtime distributed            # KAFKA_BOOTSTRAP_SERVERS
    uv run python bench/bus.py --runtime distributed --producer linger_ms=0 --producer compression_type=gzip

`--producer`/`--consumer` NAME=VALUE override a setting of the Kafka adapter's producer or group consumers
(`KafkaBus.producer_settings`, `consumer_settings`). Wall-clock figures depend on what else runs on the machine:
run a configuration more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyValues, ReadingBatchAccepted
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS
from ppa_runtime.bus import EventBus, Record

MB = 1_000_000
READING_CHANNELS = ("pv_generation", "grid_export", "grid_import")  # 48 half hours x 3 = 144 readings a day


def progress(text: str) -> None:
    """A phase note on stderr (stdout carries only the JSON result)."""
    print(f"[bench/bus] {text}", file=sys.stderr, flush=True)


def device_event(i: int, devices: int) -> Envelope:
    """One day of a device's registers as the device API publishes it (`ingest.batch_data`'s shape)."""
    serial = f"BD{i % devices:08d}"
    day = datetime(2024, 1, 16, tzinfo=UTC) + timedelta(days=i // devices)
    readings = [{"channel": channel, "at": (day + timedelta(minutes=30 * h)).isoformat().replace("+00:00", "Z"),
                 "kwh": f"{1000 + i % 997 + h * 0.125 + c:.3f}", "register_max": None}
                for h in range(1, 49) for c, channel in enumerate(READING_CHANNELS)]
    return Envelope(source=f"/ppa/{ReadingBatchAccepted.event_service}", type=ReadingBatchAccepted.event_type(),
                    subject=serial, correlationid=uuid.uuid4().hex, schemaversion=ReadingBatchAccepted.event_version,
                    data={"serial_number": serial, "readings": readings})


def relay_event(i: int) -> Envelope:
    """A customer's day of usage, as metering's outbox hands it to its relay."""
    number = f"11{i // 31:08d}"
    gen = Decimal(i % 30000) / 1000
    zero = Decimal("0.000")
    values = DailyValues(generation_kwh=gen, sold_kwh=gen / 2, usage_kwh=gen - gen / 2, import_kwh=zero,
                         battery_charge_kwh=zero, battery_discharge_kwh=zero, estimated=False, reset=False,
                         usage_clamped=False)
    event = DailyUsageComputed(agency_id="bench-agency", customer_number=number, serial_number=f"BB{i // 31:08d}",
                               date=date(2024, 1, 16) + timedelta(days=i % 31), values=values)
    return Envelope.wrap(event, subject=number, correlation_id="bench-bus", aggregate_version=1)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rates(events: int, size: int, seconds: float, cpu: float) -> dict[str, Any]:
    """Wall-clock rates, and this process's CPU per event (the bench's share of a busy machine varies, the CPU
    it spends per event much less; the broker's is not in it)."""
    return {"events": events, "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds, 1) if seconds else None,
            "mb_per_s": round(events * size / MB / seconds, 2) if seconds else None,
            "cpu_us_per_event": round(cpu / events * 1e6, 1) if events else None}


async def publish_device(bus: EventBus, events: list[Envelope], publishers: int, seconds: float) -> dict[str, Any]:
    """`publishers` tasks, each publishing one event per awaited call until the events or the time run out."""
    queue = iter(events)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def publisher() -> None:
        for event in queue:
            t0 = time.perf_counter()
            await bus.publish(METERING_READINGS, [event])
            latencies.append(time.perf_counter() - t0)
            if t0 > deadline:
                return

    began, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(publisher() for _ in range(publishers)))
    elapsed = time.perf_counter() - began
    return {**rates(len(latencies), len(events[0].to_json()), elapsed, cpu_seconds() - cpu), "publishers": publishers,
            **latency(latencies)}


async def publish_relay(bus: EventBus, events: list[Envelope], size: int, seconds: float) -> dict[str, Any]:
    """One relay publishing lists of `size` events, each awaited before the next."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    began, cpu = time.perf_counter(), cpu_seconds()
    sent = 0
    for i in range(0, len(events), size):
        t0 = time.perf_counter()
        await bus.publish(METERING_DAILY_USAGE, events[i:i + size])
        latencies.append(time.perf_counter() - t0)
        sent += len(events[i:i + size])
        if t0 > deadline:
            break
    elapsed = time.perf_counter() - began
    return {**rates(sent, len(events[0].to_json()), elapsed, cpu_seconds() - cpu), "list": size,
            **latency(latencies)}


def latency(samples: list[float]) -> dict[str, Any]:
    """Per awaited publish, in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)
    return {"publish_ms_p50": round(statistics.median(ordered) * 1000, 2),
            "publish_ms_p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)}


async def consume(bus: EventBus, topic: str, expected: int, size: int, seconds: float) -> dict[str, Any]:
    """A consumer group member reading the topic from its start, committing each fetched batch."""
    began = time.perf_counter()
    sub = await bus.subscribe(f"bench.bus.{uuid.uuid4().hex[:8]}", [topic])
    first: float | None = None
    first_cpu = 0.0
    count = fetches = untimed = 0
    try:
        deadline = began + seconds
        while count < expected and time.perf_counter() < deadline:
            records: list[Record] = await sub.fetch(timeout=0.5, max_records=500)
            if not records:
                continue
            if first is None:  # timed from here: the group's join and first fetch are apart
                first, first_cpu, untimed = time.perf_counter(), cpu_seconds(), len(records)
            for r in records:  # what every consumer asks first; on Kafka the record is decoded already
                r.type  # noqa: B018
            await sub.commit(records)
            count += len(records)
            fetches += 1
    finally:
        await sub.close()
    end = time.perf_counter()
    out = rates(count - untimed, size, end - (first or began), cpu_seconds() - first_cpu if first else 0.0)
    return {**out, "read": count, "until_first_batch_s": round((first or end) - began, 3), "fetches": fetches,
            "complete": count >= expected}


async def open_bus(args: argparse.Namespace, where: Path) -> tuple[EventBus, dict[str, Any], Any]:
    """The bus, the settings it runs with, and what closes it and removes its topics or files."""
    if args.runtime == "embedded":
        from ppa_runtime.bus_sqlite import SqliteBus
        from ppa_runtime.sqlite import SqliteDb

        db = SqliteDb(where / "bus.db", args.synchronous)
        bus = SqliteBus(db)
        await bus.start()

        async def close_sqlite() -> None:
            await bus.close()
            db.close()

        return bus, {"sqlite_synchronous": args.synchronous}, close_sqlite

    from aiokafka.admin import AIOKafkaAdminClient

    from ppa_runtime.bus_kafka import KafkaBus

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (e.g. source /work/srv/kafka/kafka.env)")
    namespace = f"bench-bus-{uuid.uuid4().hex[:8]}."
    kbus = KafkaBus(bootstrap, namespace)
    for name, overrides in (("producer_settings", args.producer), ("consumer_settings", args.consumer)):
        if overrides:
            if not hasattr(kbus, name):
                raise SystemExit(f"this KafkaBus has no {name} to override")
            setattr(kbus, name, {**getattr(kbus, name), **dict(parse_setting(o) for o in overrides)})
    await kbus.start()
    settings: dict[str, Any] = {"namespace": namespace}
    if hasattr(kbus, "producer_settings"):
        settings |= {"producer": kbus.producer_settings, "consumer": kbus.consumer_settings}
    else:  # an adapter from before the settings were named (measuring the old code)
        p = kbus.producer
        settings |= {"producer": {"compression_type": p._compression_type,
                                  "linger_ms": int(p._message_accumulator._linger_time * 1000),
                                  "max_batch_size": p._message_accumulator._batch_size}}

    async def close_kafka() -> None:
        await kbus.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(namespace)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()

    return kbus, settings, close_kafka


def parse_setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"not NAME=VALUE: {text!r}")
    if value.lstrip("-").isdigit():
        return name, int(value)
    return name, None if value in ("", "none", "None") else value


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress("building events")
    device = [device_event(i, args.devices) for i in range(args.device_events)]
    relay = [relay_event(i) for i in range(args.relay_events)]
    sizes = {"device": len(device[0].to_json()) if device else 0, "relay": len(relay[0].to_json()) if relay else 0}
    where = Path(tempfile.mkdtemp(prefix="ppa-bench-bus-"))
    result: dict[str, Any] = {
        "runtime": args.runtime, "event_bytes": sizes, "seconds_cap": args.seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_before": os.getloadavg()[0]},
    }
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    bus, settings, close = await open_bus(args, where)
    result["settings"] = settings
    try:
        if device:
            progress(f"device pattern: {len(device)} events, {args.publishers} publishers")
            result["publish_device"] = await publish_device(bus, device, args.publishers, args.seconds)
        if relay:
            progress(f"relay pattern: {len(relay)} events in lists of {args.list}")
            result["publish_relay"] = await publish_relay(bus, relay, args.list, args.seconds)
        for name, topic, key in (("consume_device", METERING_READINGS, "device"),
                                 ("consume_relay", METERING_DAILY_USAGE, "relay")):
            published = result.get(f"publish_{key}", {}).get("events", 0)
            if published:
                progress(f"consuming {published} events of {topic}")
                result[name] = await consume(bus, topic, published, sizes[key], args.seconds)
    finally:
        await close()
        shutil.rmtree(where, ignore_errors=True)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result["runtime_s"] = round(time.perf_counter() - began, 2)
    result["process_cpu_s"] = round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2)
    result["machine"]["loadavg_after"] = os.getloadavg()[0]
    return result


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/bus.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=["embedded", "distributed"], default="embedded")
    p.add_argument("--device-events", type=int, default=5000, help="events of the device pattern (0: skip it)")
    p.add_argument("--publishers", type=int, default=8, help="device-pattern publishes in flight")
    p.add_argument("--devices", type=int, default=1000, help="serials (keys) the device events spread over")
    p.add_argument("--relay-events", type=int, default=200_000, help="events of the relay pattern (0: skip it)")
    p.add_argument("--list", type=int, default=500, help="events per relay publish")
    p.add_argument("--seconds", type=float, default=30.0, help="cap per phase (publishing stops, reading stops)")
    p.add_argument("--synchronous", default="FULL", help="embedded SQLite synchronous setting")
    p.add_argument("--producer", action="append", default=[], metavar="NAME=VALUE",
                   help="a Kafka producer setting for this run (repeatable)")
    p.add_argument("--consumer", action="append", default=[], metavar="NAME=VALUE",
                   help="a Kafka group consumer setting for this run (repeatable)")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
