"""Probe: are concurrent $inc lost with maxPoolSize=1 vs >1 (FerretDB v1 serialises per connection only). Needs $MONGODB_URI."""
import asyncio, os, uuid
from pymongo import AsyncMongoClient, ReturnDocument
URI = os.environ["MONGODB_URI"]
async def main():
    for pool in (1, 2):
        cl = AsyncMongoClient(URI, maxPoolSize=pool)
        db = cl["p_" + uuid.uuid4().hex[:6]]
        await db.c.insert_one({"_id": 1, "n": 0})
        rs = await asyncio.gather(*[db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER) for _ in range(100)])
        print(f"maxPoolSize={pool}: 100 concurrent $inc -> n =", (await db.c.find_one({"_id": 1}))["n"], "distinct results:", len({r['n'] for r in rs}))
        await cl.drop_database(db.name); await cl.close()
    # two separate clients with pool 1 each
    a, b = AsyncMongoClient(URI, maxPoolSize=1), AsyncMongoClient(URI, maxPoolSize=1)
    name = "p_" + uuid.uuid4().hex[:6]
    await a[name].c.insert_one({"_id": 1, "n": 0})
    await asyncio.gather(*[cl[name].c.update_one({"_id": 1}, {"$inc": {"n": 1}}) for cl in (a, b) for _ in range(50)])
    print("two clients maxPoolSize=1 each, 100 $inc -> n =", (await a[name].c.find_one({"_id": 1}))["n"])
    await a.drop_database(name); await a.close(); await b.close()
asyncio.run(main())
