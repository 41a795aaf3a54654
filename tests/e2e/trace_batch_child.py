"""Run by tests/e2e/test_trace.py in a process of its own (the tracer provider is process-wide): three events, each
published in a trace of its own, applied at once by a batch consumer on the embedded runtime; prints the trace ids."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime import tracing
from ppa_runtime.consumer import Consumer, ConsumerSpec
from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings


async def main(data_dir: Path) -> None:
    assert tracing.setup("ppa-batch-probe")
    runtime = await Runtime.open(Settings(data_dir=data_dir, kafka_bootstrap_servers=None, mongodb_uri=None))
    traces = []
    for i in range(3):
        with tracing.span("probe request") as span:  # as an HTTP request would be
            traces.append(format(span.get_span_context().trace_id, "032x"))
            env = Envelope.wrap(AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp",
                                                 profile=AgencyProfile(company="販売店")),
                                subject=f"a{i}", correlation_id="c", aggregate_version=1)
            await runtime.bus.publish(IDENTITY_AGENCY, [env])
    applied: list[str] = []

    async def on_batch(records) -> None:
        applied.extend(r.id for r in records)

    spec = ConsumerSpec("probe-batch", [IDENTITY_AGENCY], {}, on_batch=on_batch)
    consumer = Consumer(spec, runtime.bus, runtime.docstore("probe").collection("inbox"))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    while len(applied) < 3:
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await runtime.close()
    tracing.shutdown()
    print(" ".join(traces))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
