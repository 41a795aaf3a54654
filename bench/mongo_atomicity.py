"""bench/mongo_atomicity — does a MongoDB-protocol server keep single-document updates atomic under concurrency?

Three probes against MONGODB_URI (a database of its own, dropped afterwards), each a count MongoDB gets exactly
right: 50 concurrent `$inc` of one document (50), 20 concurrent conditional updates `{_id, v: 0} → v = 1` of one
document in each of 5 trials (1 winner each), 10 workers claiming 10 free jobs with `find_one_and_update` (10
distinct jobs). Prints one JSON document. See docs/mongodb-server.md.

    MONGODB_URI=mongodb://127.0.0.1:PORT/ uv run python bench/mongo_atomicity.py
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

from pymongo import AsyncMongoClient, ReturnDocument


async def probe(uri: str) -> dict:
    client = AsyncMongoClient(uri, maxPoolSize=100)
    db = client[f"atomicity{uuid.uuid4().hex[:8]}"]
    try:
        info = await client.admin.command("buildInfo")
        await db.counter.insert_one({"_id": "n", "n": 0})
        await asyncio.gather(*(db.counter.update_one({"_id": "n"}, {"$inc": {"n": 1}}) for _ in range(50)))
        increments = (await db.counter.find_one({"_id": "n"}))["n"]
        winners = []
        for trial in range(5):
            await db.races.insert_one({"_id": f"t{trial}", "v": 0})
            results = await asyncio.gather(*(db.races.update_one({"_id": f"t{trial}", "v": 0},
                                                                 {"$set": {"v": 1, "by": i}}) for i in range(20)))
            winners.append(sum(r.modified_count for r in results))
        await db.jobs.insert_many([{"_id": f"j{i}", "state": "free"} for i in range(10)])

        async def claim(worker: int) -> str | None:
            doc = await db.jobs.find_one_and_update({"state": "free"}, {"$set": {"state": "taken", "by": worker}},
                                                    return_document=ReturnDocument.AFTER)
            return doc["_id"] if doc else None

        claimed = [c for c in await asyncio.gather(*(claim(w) for w in range(10))) if c]
        return {"server": {k: info.get(k) for k in ("version", "ferretdbVersion", "gitVersion") if k in info},
                "increments_of_50": increments, "conditional_winners_of_20": winners,
                "claims": len(claimed), "distinct_jobs_claimed_of_10": len(set(claimed)),
                "atomic": increments == 50 and winners == [1] * 5 and len(set(claimed)) == len(claimed) == 10}
    finally:
        await client.drop_database(db.name)
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(os.environ["MONGODB_URI"])), ensure_ascii=False))
