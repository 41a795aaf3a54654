"""bench/mongo_ops — what one MongoDB command costs the server, by kind, as a collection grows.

Fills a collection with reading-chunk-sized documents (a day of 144 readings, stored as one JSON text or as four
arrays), then times point reads by `_id` (found and missing), replaces and inserts. With `--server-pid` (FerretDB's,
say) it also reports the server's CPU per command. Prints one JSON document.

    uv run python bench/mongo_ops.py --uri "$MONGODB_URI" --docs 1000 5000 --server-pid "$(cat DIR/ferretdb.pid)"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from pymongo import AsyncMongoClient


def chunk(i: int, form: str) -> dict[str, Any]:
    columns = [[i % 5] * 144, [1_700_000_000_000_000 + k * 1_800_000_000 for k in range(144)],
               [f"{1234.567 + k:.3f}" for k in range(144)], [None] * 144]
    doc: dict[str, Any] = {"_id": f"S{i % 8}|2024-01-{i % 28 + 1:02d}|{i}", "b": uuid.uuid4().hex,
                           "serial_number": f"S{i % 8}", "date": "2024-01-01"}
    if form == "text":
        doc["e"] = orjson.dumps(columns).decode()
    else:
        doc.update(zip("ctkm", columns, strict=True))
    return doc


def cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(pid: int | None, n: int, op) -> dict[str, float]:
    c0, t0 = cpu(pid), time.perf_counter()
    for i in range(n):
        await op(i)
    out = {"wall_ms": round((time.perf_counter() - t0) / n * 1e3, 3)}
    if pid is not None:
        out["server_cpu_us"] = round((cpu(pid) - c0) / n * 1e6)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = AsyncMongoClient(args.uri)
    db = client[f"bench_mongo_ops_{uuid.uuid4().hex[:8]}"]
    results = []
    try:
        for form in args.forms:
            for size in args.docs:
                coll = db[f"chunks_{form}_{size}"]
                for start in range(0, size, 500):
                    await coll.insert_many([chunk(i, form) for i in range(start, min(size, start + 500))])
                ids = [chunk(i, form)["_id"] for i in range(args.ops)]
                row = {"form": form, "documents": size, "ops": args.ops}
                row["find_found"] = await measure(args.server_pid, args.ops, lambda i: coll.find_one({"_id": ids[i]}))
                row["find_missing"] = await measure(args.server_pid, args.ops,
                                                    lambda i: coll.find_one({"_id": f"absent{i}"}))
                row["replace"] = await measure(args.server_pid, args.ops,
                                               lambda i: coll.replace_one({"_id": ids[i]}, chunk(i, form)))
                row["insert"] = await measure(args.server_pid, args.ops,
                                              lambda i: coll.insert_one(chunk(size + i, form)))
                results.append(row)
    finally:
        await client.drop_database(db.name)
        await client.close()
    return {"uri_host": args.uri.split("@")[-1].split("/")[2] if "//" in args.uri else args.uri,
            "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()[0], "results": results}


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/mongo_ops.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", default=os.environ.get("MONGODB_URI"), help="MongoDB URI (default: $MONGODB_URI)")
    p.add_argument("--docs", type=int, nargs="+", default=[1000, 5000], help="collection sizes to measure at")
    p.add_argument("--ops", type=int, default=200, help="commands of each kind per size")
    p.add_argument("--forms", nargs="+", choices=["text", "arrays"], default=["text", "arrays"],
                   help="chunk forms: readings as one JSON text (as stored now) or as four arrays (before)")
    p.add_argument("--server-pid", type=int, default=None, help="the server's pid, for its CPU per command")
    args = p.parse_args()
    if not args.uri:
        raise SystemExit("--uri or MONGODB_URI is needed")
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
