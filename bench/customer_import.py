"""bench/customer_import — customers per second imported from one CSV file, per runtime, against one-by-one
registration.

Opens the runtime in this process (its own data directory, or its own topic/database namespace on Kafka +
MongoDB), starts billing's command side and imports an N-row file of the customer list's columns the way the
portal and `ppa customers import` do: parse, judge every row against the agency's customers, then per batch one
bulk serial claim, one bulk append (one `CustomerRegistered` event per customer stream, in the outbox) and one
bulk write of the read model and the codes. The clock stops when every customer is listed on 顧客管理; publishing
the events and the other services' consumers follow asynchronously, as after any registration. The JSON also gives
this process's CPU seconds (on a shared machine the wall clock says as much about the neighbours). Then the same file
is imported again (every row unchanged: the preview cost), and `--single` customers are registered one by one
with `Customers.register` for the comparison. Prints one JSON document.

    uv run python bench/customer_import.py --runtime embedded --rows 100000
    uv run python bench/customer_import.py --runtime distributed --rows 100000   # KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

from ppa_billing.domain.customer_import import HEADER
from ppa_billing.service import BillingService
from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings


def csv_file(rows: int, first: int = 1) -> bytes:
    """An N-row file as the customer list CSV exports it (UTF-8 with BOM, CRLF)."""
    lines = [",".join(HEADER)]
    for n in range(first, first + rows):
        lines.append(f"11{n:08d},B{n:09d},顧客{n:06d},コキャク{n:06d},2024/01/16,2034/01/15,980,16.00,27.00,"
                     f"c{n}@example.jp")
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


async def run(kind: str, rows: int, single: int, data_dir: Path) -> dict:
    fields: dict = {"data_dir": data_dir, "namespace": f"bench{uuid.uuid4().hex[:8]}_", "log_level": "WARNING"}
    if kind == "embedded":
        fields |= {"kafka_bootstrap_servers": None, "mongodb_uri": None}
    else:
        fields |= {"kafka_bootstrap_servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                   "mongodb_uri": os.environ["MONGODB_URI"], "secret_key": os.environ.get("PPA_SECRET_KEY", "b" * 48)}
    runtime = await Runtime.open(Settings(**fields))
    try:
        billing = BillingService(runtime)
        await billing.start()
        agency = uuid.uuid4().hex
        data = csv_file(rows)
        started, cpu = time.perf_counter(), time.process_time()
        result = await billing.customer_import.run(agency, data)
        imported, import_cpu = time.perf_counter() - started, time.process_time() - cpu
        listed = (await billing.customers.search(agency, per_page=1))[1]
        assert listed == rows and all(r.status == "new" for r in result), (listed, rows)
        started = time.perf_counter()
        again = await billing.customer_import.run(agency, data)
        unchanged = time.perf_counter() - started
        assert all(r.status == "unchanged" for r in again)
        started = time.perf_counter()
        for n in range(rows + 1, rows + 1 + single):
            await billing.customers.register(agency, {
                "customer_number": f"11{n:08d}", "serial_number": f"B{n:09d}", "name": f"顧客{n:06d}",
                "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00"})
        one_by_one = time.perf_counter() - started
    finally:
        await runtime.close()
    return {"runtime": kind, "rows": rows, "file_bytes": len(data),
            "import_seconds": round(imported, 2), "import_rows_per_s": round(rows / imported),
            # this process's CPU (on the embedded runtime SQLite's too): less swayed by other loads on the machine
            "import_cpu_seconds": round(import_cpu, 2), "import_rows_per_cpu_s": round(rows / import_cpu),
            "reimport_unchanged_seconds": round(unchanged, 2), "reimport_rows_per_s": round(rows / unchanged),
            "single_registrations": single,
            "single_rows_per_s": round(single / one_by_one) if single else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", choices=("embedded", "distributed"), default="embedded")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--single", type=int, default=500, help="customers registered one by one for the comparison")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run(args.runtime, args.rows, args.single, Path(tmp)))
    out |= {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
