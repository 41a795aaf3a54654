"""Probe: concurrency/atomicity of updates (concurrent $inc, version CAS, queue claim, unique inserts),
error codes on unique violations, $elemMatch/$push modifiers/$group accumulators support. Needs $MONGODB_URI."""
import asyncio, os, uuid
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

URI = os.environ["MONGODB_URI"]

async def main():
    cl = AsyncMongoClient(URI, maxPoolSize=50)
    db = cl["conc_" + uuid.uuid4().hex[:6]]

    # (a) update_one $inc, concurrent
    for rounds in range(3):
        await db.c.delete_many({}); await db.c.insert_one({"_id": 1, "n": 0})
        await asyncio.gather(*[db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}) for _ in range(50)])
        print("(a) 50 concurrent update_one $inc -> n =", (await db.c.find_one({"_id": 1}))["n"])

    # (a2) sequential
    await db.c.delete_many({}); await db.c.insert_one({"_id": 1, "n": 0})
    for _ in range(50):
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
    print("(a2) 50 sequential update_one $inc -> n =", (await db.c.find_one({"_id": 1}))["n"])

    # (b) CAS with version filter
    for rounds in range(3):
        await db.v.delete_many({}); await db.v.insert_one({"_id": 1, "version": 1, "owner": None})
        rs = await asyncio.gather(*[db.v.update_one({"_id": 1, "version": 1}, {"$set": {"version": 2, "owner": i}}) for i in range(20)])
        print("(b) 20 concurrent CAS update_one({version:1}) -> winners (modified_count==1):",
              sum(r.modified_count for r in rs), "final:", await db.v.find_one({"_id": 1}))

    # (c) queue claim with find_one_and_update
    for rounds in range(3):
        await db.q.delete_many({}); await db.q.insert_many([{"_id": i, "state": "ready"} for i in range(10)])
        async def claim(w):
            return await db.q.find_one_and_update({"state": "ready"}, {"$set": {"state": "taken", "by": w}},
                                                  sort=[("_id", 1)], return_document=ReturnDocument.AFTER)
        rs = await asyncio.gather(*[claim(w) for w in range(10)])
        ids = [r["_id"] for r in rs if r]
        print("(c) 10 workers claim 10 jobs -> claimed ids:", sorted(ids), "distinct:", len(set(ids)))

    # (d) concurrent inserts with unique index
    await db.u.create_index("k", unique=True)
    async def ins(i):
        try:
            await db.u.insert_one({"k": "same", "i": i}); return "ok"
        except DuplicateKeyError:
            return "dup"
    rs = await asyncio.gather(*[ins(i) for i in range(20)])
    print("(d) 20 concurrent inserts same unique key ->", rs.count("ok"), "ok,", rs.count("dup"), "DuplicateKeyError; docs:", await db.u.count_documents({}))

    # (e) duplicate via update: error type
    await db.u.insert_one({"k": "other"})
    try:
        await db.u.update_one({"k": "other"}, {"$set": {"k": "same"}})
    except DuplicateKeyError as e:
        print("(e) update to dup key -> DuplicateKeyError", e.code)
    except OperationFailure as e:
        print("(e) update to dup key -> OperationFailure code=%s codeName=%s" % (e.code, e.details.get("codeName")))
    print("    doc after:", await db.u.find_one({"k": "other"}, {"_id": 0}))
    try:
        await db.u.find_one_and_update({"k": "other"}, {"$set": {"k": "same"}})
    except DuplicateKeyError as e:
        print("(e2) find_one_and_update to dup key -> DuplicateKeyError", e.code)
    except OperationFailure as e:
        print("(e2) find_one_and_update to dup key -> OperationFailure code=%s codeName=%s" % (e.code, e.details.get("codeName")))
    try:
        await db.u.update_one({"k": "newkey"}, {"$set": {"k": "same"}}, upsert=True)
        print("(e3) upsert creating dup -> no error!?")
    except DuplicateKeyError as e:
        print("(e3) upsert producing dup key -> DuplicateKeyError", e.code)
    except OperationFailure as e:
        print("(e3) upsert producing dup key -> OperationFailure code=%s codeName=%s" % (e.code, e.details.get("codeName")))

    # (f) $elemMatch variants
    await db.em.insert_many([{"a": [{"k": 1, "v": "x"}, {"k": 2, "v": "y"}]}, {"a": [{"k": 1, "v": "y"}]}, {"a": [3, 7]}])
    for q in [{"a": {"$elemMatch": {"k": 1, "v": "y"}}}, {"a": {"$elemMatch": {"k": {"$eq": 1}}}},
              {"a": {"$elemMatch": {"$gt": 5}}}, {"a.k": 2}, {"a": {"k": 1, "v": "y"}}]:
        try:
            print("(f)", q, "->", await db.em.count_documents(q))
        except OperationFailure as e:
            print("(f)", q, "-> ERROR", e.details.get("errmsg"))

    # (g) Decimal128 & unsupported: server alive after?
    from bson.decimal128 import Decimal128
    try:
        await db.t.insert_one({"d": Decimal128("1.1")})
        print("(g) Decimal128 insert ok")
    except Exception as e:
        print("(g) Decimal128 insert ->", type(e).__name__, str(e)[:150])
    print("    ping after:", await cl.admin.command("ping"))

    # (h) $push $slice / $position / $sort silently ignored?
    await db.p.insert_one({"_id": 1, "a": [1, 2, 3]})
    for mod in [{"$slice": -2}, {"$position": 0}, {"$sort": -1}]:
        try:
            await db.p.update_one({"_id": 1}, {"$push": {"a": {"$each": [9], **mod}}})
            print("(h) $push", mod, "-> accepted, array now", (await db.p.find_one({"_id": 1}))["a"])
        except OperationFailure as e:
            print("(h) $push", mod, "-> ERROR", e.details.get("errmsg"))

    # (i) $group accumulators supported
    await db.g.insert_many([{"c": "a", "x": 1}, {"c": "a", "x": 3}, {"c": "b", "x": 5}])
    for acc in ["$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$count"]:
        arg = {} if acc == "$count" else "$x"
        try:
            out = [d async for d in await db.g.aggregate([{"$group": {"_id": "$c", "r": {acc: arg}}}, {"$sort": {"_id": 1}}])]
            print("(i) $group", acc, "->", out)
        except OperationFailure as e:
            print("(i) $group", acc, "-> ERROR", e.details.get("errmsg"))
    for st in [{"$sortByCount": "$c"}, {"$addFields": {"y": 1}}, {"$set": {"y": 1}}, {"$unset": "x"},
               {"$replaceRoot": {"newRoot": {"z": "$x"}}}, {"$sample": {"size": 1}}, {"$bucket": {"groupBy": "$x", "boundaries": [0, 4, 10]}}]:
        try:
            out = [d async for d in await db.g.aggregate([st])]
            print("(i) stage", list(st)[0], "-> ok", len(out))
        except OperationFailure as e:
            print("(i) stage", list(st)[0], "-> ERROR", e.details.get("errmsg"))
    try:
        out = [d async for d in await db.g.aggregate([{"$project": {"s": {"$concat": ["$c", "-"]}, "t": {"$add": ["$x", 1]}}}])]
        print("(i) $project with expressions ($concat/$add) ->", out[:1])
    except OperationFailure as e:
        print("(i) $project expressions -> ERROR", e.details.get("errmsg"))

    # (j) sort on missing/mixed types, and sort+limit on indexed field, $regex unanchored
    print("(j) find with $regex unanchored:", await db.g.count_documents({"c": {"$regex": "A", "$options": "i"}}))
    await cl.drop_database(db.name)
    await cl.close()

asyncio.run(main())
