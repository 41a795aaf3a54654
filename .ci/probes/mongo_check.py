"""Probe: MongoDB feature matrix of the server at $MONGODB_URI (written against FerretDB v1.24 + SQLite).
Prints PASS/FAIL per feature; FAIL lines are what the server does not support (or does differently).
Run: bash .ci/ferretdb.sh start /tmp/f && . /tmp/f/ferretdb.env && python .ci/probes/mongo_check.py"""
import asyncio, datetime, os, sys, traceback, uuid
import pymongo
from pymongo import AsyncMongoClient, ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, BulkWriteError, OperationFailure

URI = os.environ["MONGODB_URI"]
results = []

def rec(name, ok, detail=""):
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail else ""), flush=True)

async def check(name, coro_fn):
    try:
        r = await coro_fn()
        if r is None or r is True:
            rec(name, True)
        elif isinstance(r, str):
            rec(name, True, r)
        else:
            rec(name, False, repr(r))
    except AssertionError as e:
        rec(name, False, "assertion: " + str(e))
    except Exception as e:
        rec(name, False, f"{type(e).__name__}: {str(e)[:300]}")

async def main():
    client = AsyncMongoClient(URI, uuidRepresentation="standard", tz_aware=True,
                              serverSelectionTimeoutMS=5000)
    db = client["ci_check_" + uuid.uuid4().hex[:6]]
    info = await client.admin.command("buildInfo")
    print("server buildInfo version:", info.get("version"), "ferretdb:", info.get("ferretdb", {}).get("version"))

    c = db.basic
    async def t_insert_find():
        r = await c.insert_one({"name": "alice", "age": 30, "tags": ["x"]})
        d = await c.find_one({"_id": r.inserted_id})
        assert d["name"] == "alice", d
    await check("insert_one + find_one", t_insert_find)

    async def t_unique():
        name = await db.users.create_index([("email", ASCENDING)], unique=True)
        await db.users.insert_one({"email": "a@x"})
        try:
            await db.users.insert_one({"email": "a@x"})
        except DuplicateKeyError as e:
            return f"DuplicateKeyError code={e.code}, index={name}"
        assert False, "duplicate accepted"
    await check("unique index -> DuplicateKeyError on insert_one", t_unique)

    async def t_unique_update():
        await db.users.insert_one({"email": "b@x"})
        try:
            await db.users.update_one({"email": "b@x"}, {"$set": {"email": "a@x"}})
        except DuplicateKeyError as e:
            return f"DuplicateKeyError code={e.code}"
        assert False, "duplicate via update accepted"
    await check("unique index enforced on update_one ($set to existing value)", t_unique_update)

    async def t_insert_many_dup():
        try:
            await db.users.insert_many([{"email": "c@x"}, {"email": "c@x"}, {"email": "d@x"}], ordered=False)
        except BulkWriteError as e:
            n = await db.users.count_documents({"email": {"$in": ["c@x", "d@x"]}})
            return f"BulkWriteError nInserted={e.details.get('nInserted')} errors={[x.get('code') for x in e.details.get('writeErrors', [])]} docs_now={n}"
        assert False, "no error"
    await check("insert_many(ordered=False) with a duplicate -> BulkWriteError", t_insert_many_dup)

    async def t_update_ops():
        o = db.orders
        await o.insert_one({"_id": "o1", "status": "new", "version": 1, "qty": 1, "items": ["a"]})
        r = await o.update_one({"_id": "o1", "version": 1, "status": {"$in": ["new", "pending"]}},
                               {"$set": {"status": "paid"}, "$inc": {"version": 1, "qty": 5},
                                "$push": {"items": {"$each": ["b", "c"]}}})
        assert (r.matched_count, r.modified_count) == (1, 1), (r.matched_count, r.modified_count)
        r2 = await o.update_one({"_id": "o1", "version": 1}, {"$set": {"status": "stale"}})
        assert r2.matched_count == 0, "stale version matched"
        d = await o.find_one({"_id": "o1"})
        assert d == {"_id": "o1", "status": "paid", "version": 2, "qty": 6, "items": ["a", "b", "c"]}, d
    await check("update_one filter-cond + $set/$inc/$push $each (optimistic version)", t_update_ops)

    async def t_push_slice():
        o = db.orders
        await o.update_one({"_id": "o1"}, {"$push": {"items": {"$each": ["d", "e"], "$slice": -3}}})
        d = await o.find_one({"_id": "o1"})
        assert d["items"] == ["c", "d", "e"], d["items"]
    await check("$push $each + $slice", t_push_slice)

    async def t_push_position():
        o = db.orders
        await o.update_one({"_id": "o1"}, {"$push": {"items": {"$each": ["z"], "$position": 0}}})
        d = await o.find_one({"_id": "o1"})
        assert d["items"][0] == "z", d["items"]
    await check("$push $each + $position", t_push_position)

    async def t_other_update_ops():
        o = db.orders
        await o.update_one({"_id": "o1"}, {"$addToSet": {"items": "a"}, "$unset": {"qty": ""},
                                           "$max": {"version": 10}, "$currentDate": {"ts": True}})
        await o.update_one({"_id": "o1"}, {"$pull": {"items": "z"}})
        d = await o.find_one({"_id": "o1"})
        assert "qty" not in d and d["version"] == 10 and "z" not in d["items"] and isinstance(d["ts"], datetime.datetime), d
    await check("$addToSet/$unset/$max/$currentDate/$pull", t_other_update_ops)

    async def t_foau_upsert():
        s = db.seq
        d1 = await s.find_one_and_update({"_id": "ctr"}, {"$inc": {"n": 1}, "$setOnInsert": {"created": "yes"}},
                                         upsert=True, return_document=ReturnDocument.AFTER)
        d2 = await s.find_one_and_update({"_id": "ctr"}, {"$inc": {"n": 1}, "$setOnInsert": {"created": "again"}},
                                         upsert=True, return_document=ReturnDocument.AFTER)
        assert d1 == {"_id": "ctr", "n": 1, "created": "yes"}, d1
        assert d2 == {"_id": "ctr", "n": 2, "created": "yes"}, d2
        d0 = await s.find_one_and_update({"_id": "ctr"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.BEFORE)
        assert d0["n"] == 2, d0
    await check("find_one_and_update upsert + $setOnInsert + ReturnDocument AFTER/BEFORE", t_foau_upsert)

    async def t_foau_upsert_filter_fields():
        s = db.seq
        d = await s.find_one_and_update({"tenant": "t1", "key": "k"}, {"$set": {"v": 1}}, upsert=True,
                                        return_document=ReturnDocument.AFTER)
        assert d["tenant"] == "t1" and d["key"] == "k" and d["v"] == 1, d
    await check("find_one_and_update upsert copies equality filter fields into new doc", t_foau_upsert_filter_fields)

    async def t_foau_sort():
        q = db.queue
        await q.insert_many([{"p": i, "state": "ready"} for i in (3, 1, 2)])
        d = await q.find_one_and_update({"state": "ready"}, {"$set": {"state": "taken"}}, sort=[("p", ASCENDING)],
                                        return_document=ReturnDocument.AFTER)
        assert d["p"] == 1, d
    await check("find_one_and_update with sort (queue claim)", t_foau_sort)

    async def t_concurrent_inc():
        s = db.seq
        await s.insert_one({"_id": "par", "n": 0})
        async def one():
            d = await s.find_one_and_update({"_id": "par"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)
            return d["n"]
        vals = await asyncio.gather(*[one() for _ in range(50)])
        final = (await s.find_one({"_id": "par"}))["n"]
        assert final == 50 and len(set(vals)) == 50, (final, sorted(vals))
    await check("50 concurrent find_one_and_update $inc: atomic, distinct results", t_concurrent_inc)

    async def t_concurrent_upsert():
        u = db.cu
        await u.create_index("k", unique=True)
        async def one(i):
            try:
                await u.update_one({"k": "same"}, {"$inc": {"n": 1}}, upsert=True)
                return "ok"
            except DuplicateKeyError:
                return "dup"
        rs = await asyncio.gather(*[one(i) for i in range(20)])
        docs = await u.count_documents({"k": "same"})
        n = (await u.find_one({"k": "same"}))["n"]
        assert docs == 1, docs
        return f"docs=1, n={n}, results: ok={rs.count('ok')} dup={rs.count('dup')}"
    await check("20 concurrent update_one upserts on unique key -> 1 doc", t_concurrent_upsert)

    async def t_compound_unique():
        m = db.members
        await m.create_index([("org", ASCENDING), ("user", ASCENDING)], unique=True)
        await m.insert_one({"org": "o1", "user": "u1"})
        await m.insert_one({"org": "o1", "user": "u2"})
        await m.insert_one({"org": "o2", "user": "u1"})
        try:
            await m.insert_one({"org": "o1", "user": "u1"})
        except DuplicateKeyError:
            return None
        assert False, "compound duplicate accepted"
    await check("compound unique index (dup pair rejected, other pairs ok)", t_compound_unique)

    async def t_unique_missing_field():
        m = db.sparse_test
        await m.create_index("code", unique=True)
        await m.insert_one({"x": 1})
        try:
            await m.insert_one({"x": 2})
        except DuplicateKeyError:
            return "second doc missing field rejected (MongoDB behaviour: missing == null)"
        return "two docs missing the unique field BOTH accepted (differs from MongoDB, which rejects)"
    await check("unique index, two docs missing the field (info)", t_unique_missing_field)

    async def t_partial_unique():
        m = db.partial
        await m.create_index("code", unique=True, partialFilterExpression={"code": {"$exists": True}})
        await m.insert_one({"x": 1}); await m.insert_one({"x": 2})
        await m.insert_one({"code": "a"})
        try:
            await m.insert_one({"code": "a"})
        except DuplicateKeyError:
            return None
        assert False, "partial unique not enforced"
    await check("partial unique index (partialFilterExpression)", t_partial_unique)

    async def t_sparse_unique():
        m = db.sparse
        await m.create_index("code", unique=True, sparse=True)
        await m.insert_one({"x": 1}); await m.insert_one({"x": 2})
    await check("sparse unique index creation + 2 docs without field", t_sparse_unique)

    async def t_multikey_unique():
        t = db.tagged
        await t.create_index("tags", unique=True)
        await t.insert_one({"_id": 1, "tags": ["a", "b"]})
        try:
            await t.insert_one({"_id": 2, "tags": ["b", "c"]})
        except DuplicateKeyError:
            return "enforced: overlapping array element rejected"
        docs = await t.count_documents({"tags": "b"})
        return f"NOT ENFORCED (overlapping array accepted; {docs} docs have tags 'b')"
    await check("multikey unique index on array field (info)", t_multikey_unique)

    async def t_multikey_unique_scalar_vs_array():
        t = db.tagged2
        await t.create_index("tags", unique=True)
        await t.insert_one({"_id": 1, "tags": "a"})
        try:
            await t.insert_one({"_id": 2, "tags": ["a", "q"]})
        except DuplicateKeyError:
            return "enforced"
        return "NOT ENFORCED (scalar 'a' vs array ['a','q'] accepted)"
    await check("multikey unique: scalar vs array element (info)", t_multikey_unique_scalar_vs_array)

    async def t_multikey_same_array():
        t = db.tagged3
        await t.create_index("tags", unique=True)
        await t.insert_one({"_id": 1, "tags": ["a", "b"]})
        try:
            await t.insert_one({"_id": 2, "tags": ["a", "b"]})
        except DuplicateKeyError:
            return "enforced (identical arrays rejected)"
        return "NOT ENFORCED even for identical arrays"
    await check("multikey unique: identical arrays (info)", t_multikey_same_array)

    p = db.people
    await p.insert_many([{"name": n, "age": a, "city": c} for n, a, c in [
        ("Alice", 30, "Paris"), ("bob", 25, "Berlin"), ("Carol", 35, "Paris"), ("dave", 40, "Rome"),
        ("ALINA", 22, "Oslo"), ("eve", 28, "Berlin"), ("Frank", 33, "Rome")]])

    async def t_sort_skip_limit():
        names = [d["name"] async for d in p.find({}, {"name": 1, "_id": 0}).sort([("age", DESCENDING)]).skip(1).limit(3)]
        assert names == ["Carol", "Frank", "Alice"], names
    await check("sort + skip + limit", t_sort_skip_limit)

    async def t_multi_sort():
        names = [d["name"] async for d in p.find({}).sort([("city", ASCENDING), ("age", DESCENDING)])]
        assert names == ["eve", "bob", "ALINA", "Carol", "Alice", "dave", "Frank"], names
    await check("sort on two keys (asc, desc)", t_multi_sort)

    async def t_regex_i():
        names = sorted([d["name"] async for d in p.find({"name": {"$regex": "^al", "$options": "i"}})])
        assert names == ["ALINA", "Alice"], names
    await check('$regex with $options "i"', t_regex_i)

    async def t_regex_native():
        import re
        names = sorted([d["name"] async for d in p.find({"name": re.compile("^AL", re.I)})])
        assert names == ["ALINA", "Alice"], names
    await check("Python re.compile(..., re.I) regex", t_regex_native)

    async def t_in():
        n = sorted([d["name"] async for d in p.find({"city": {"$in": ["Rome", "Oslo"]}})])
        assert n == ["ALINA", "Frank", "dave"], n
    await check("$in", t_in)

    async def t_nin_ne():
        n = await p.count_documents({"city": {"$nin": ["Rome", "Oslo"]}, "name": {"$ne": "bob"}})
        assert n == 3, n
    await check("$nin / $ne", t_nin_ne)

    async def t_or():
        n = sorted([d["name"] async for d in p.find({"$or": [{"age": {"$lt": 25}}, {"city": "Rome", "age": {"$gte": 40}}]})])
        assert n == ["ALINA", "dave"], n
    await check("$or", t_or)

    async def t_and_range():
        n = await p.count_documents({"$and": [{"age": {"$gte": 25}}, {"age": {"$lte": 33}}]})
        assert n == 4, n
    await check("$and + range ($gte/$lte)", t_and_range)

    async def t_count():
        a = await p.count_documents({})
        b = await p.count_documents({"city": "Paris"})
        c = await p.count_documents({"city": "Paris"}, skip=1, limit=5)
        e = await p.estimated_document_count()
        assert (a, b, c, e) == (7, 2, 1, 7), (a, b, c, e)
    await check("count_documents (empty/filtered/skip+limit) + estimated_document_count", t_count)

    async def t_distinct():
        d = sorted(await p.distinct("city"))
        assert d == ["Berlin", "Oslo", "Paris", "Rome"], d
    await check("distinct", t_distinct)

    async def t_exists_elem():
        e = db.emt
        await e.insert_many([{"a": [{"k": 1, "v": "x"}, {"k": 2, "v": "y"}]}, {"a": [{"k": 1, "v": "y"}]}, {"b": 1}])
        n1 = await e.count_documents({"a": {"$exists": True}})
        n2 = await e.count_documents({"a": {"$elemMatch": {"k": 1, "v": "y"}}})
        assert (n1, n2) == (2, 1), (n1, n2)
    await check("$exists / $elemMatch", t_exists_elem)

    async def t_dot_notation():
        e = db.nested
        await e.insert_one({"_id": 1, "meta": {"owner": {"id": "u1"}, "n": 1}})
        await e.update_one({"meta.owner.id": "u1"}, {"$set": {"meta.owner.name": "U"}, "$inc": {"meta.n": 1}})
        d = await e.find_one({"meta.owner.name": "U"})
        assert d and d["meta"]["n"] == 2, d
    await check("dot-notation query + update on nested fields", t_dot_notation)

    async def t_array_query():
        n = await db.orders.count_documents({"items": "a"})
        n2 = await db.orders.count_documents({"items": {"$all": ["a", "c"]}})
        n3 = await db.orders.count_documents({"items": {"$size": 5}})
        return f"array-contains={n}, $all={n2}, $size={n3}"
    await check("array queries (contains / $all / $size)", t_array_query)

    async def t_positional():
        e = db.pos
        await e.insert_one({"_id": 1, "lines": [{"sku": "a", "q": 1}, {"sku": "b", "q": 1}]})
        await e.update_one({"_id": 1, "lines.sku": "b"}, {"$inc": {"lines.$.q": 2}})
        d = await e.find_one({"_id": 1})
        assert d["lines"][1]["q"] == 3, d
    await check('positional "$" update operator', t_positional)

    async def t_array_filters():
        e = db.pos
        await e.update_one({"_id": 1}, {"$set": {"lines.$[l].q": 9}}, array_filters=[{"l.sku": "a"}])
        d = await e.find_one({"_id": 1})
        assert d["lines"][0]["q"] == 9, d
    await check("arrayFilters $[ident]", t_array_filters)

    async def t_update_many_delete():
        r = await p.update_many({"city": "Berlin"}, {"$set": {"eu": True}})
        d = await p.delete_one({"name": "eve"})
        r2 = await p.replace_one({"name": "bob"}, {"name": "bob", "age": 26, "city": "Berlin"})
        dm = await db.queue.delete_many({})
        assert (r.modified_count, d.deleted_count, r2.modified_count, dm.deleted_count) == (2, 1, 1, 3), (r.modified_count, d.deleted_count, r2.modified_count, dm.deleted_count)
    await check("update_many / delete_one / replace_one / delete_many", t_update_many_delete)

    async def t_bulk_write():
        from pymongo import InsertOne, UpdateOne, DeleteOne
        r = await db.bulk.bulk_write([InsertOne({"_id": 1}), InsertOne({"_id": 2}),
                                       UpdateOne({"_id": 1}, {"$set": {"x": 1}}), DeleteOne({"_id": 2}),
                                       UpdateOne({"_id": 3}, {"$set": {"x": 3}}, upsert=True)])
        assert (r.inserted_count, r.modified_count, r.deleted_count, r.upserted_count) == (2, 1, 1, 1), r.bulk_api_result
    await check("bulk_write (InsertOne/UpdateOne/DeleteOne/upsert)", t_bulk_write)

    async def t_projection():
        d = await p.find_one({"name": "Alice"}, {"_id": 0, "name": 1})
        assert d == {"name": "Alice"}, d
    await check("projection", t_projection)

    async def t_datetime_uuid():
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=123000)
        u = uuid.uuid4()
        await db.types.insert_one({"_id": u, "at": now, "big": 2**62, "f": 1.5, "none": None, "b": b"\x00\x01"})
        d = await db.types.find_one({"_id": u})
        assert d["at"] == now and d["_id"] == u and d["big"] == 2**62 and d["none"] is None and d["b"] == b"\x00\x01", d
        n = await db.types.count_documents({"at": {"$gt": now - datetime.timedelta(seconds=1)}})
        assert n == 1, n
    await check("types: UUID _id, tz datetime (+range query), int64, bytes, null", t_datetime_uuid)

    async def t_decimal():
        from bson.decimal128 import Decimal128
        await db.types.insert_one({"_id": "dec", "d": Decimal128("1.10")})
        d = await db.types.find_one({"_id": "dec"})
        assert str(d["d"]) == "1.10", d
    await check("Decimal128", t_decimal)

    async def t_aggregate():
        out = [d async for d in await p.aggregate([
            {"$match": {"age": {"$gte": 25}}},
            {"$group": {"_id": "$city", "n": {"$sum": 1}, "avg": {"$avg": "$age"}}},
            {"$sort": {"n": -1, "_id": 1}}, {"$limit": 2}])]
        assert out[0]["_id"] == "Paris" and out[0]["n"] == 2, out
    await check("aggregate $match/$group/$sum/$avg/$sort/$limit", t_aggregate)

    async def t_agg_unwind_count():
        out = [d async for d in await db.orders.aggregate([{"$unwind": "$items"}, {"$count": "n"}])]
        assert out and out[0]["n"] >= 1, out
        out2 = [d async for d in await p.aggregate([{"$project": {"name": 1, "_id": 0}}, {"$skip": 1}, {"$limit": 1}])]
        assert len(out2) == 1, out2
    await check("aggregate $unwind/$count/$project/$skip", t_agg_unwind_count)

    async def t_agg_lookup():
        out = [d async for d in await db.members.aggregate([
            {"$lookup": {"from": "people", "localField": "user", "foreignField": "name", "as": "j"}}])]
        return f"{len(out)} docs"
    await check("aggregate $lookup", t_agg_lookup)

    async def t_agg_facet():
        out = [d async for d in await p.aggregate([{"$facet": {"a": [{"$count": "n"}]}}])]
        return str(out)
    await check("aggregate $facet", t_agg_facet)

    async def t_expr():
        n = await p.count_documents({"$expr": {"$gt": ["$age", 30]}})
        return f"n={n}"
    await check("$expr in find", t_expr)

    async def t_update_pipeline():
        await db.orders.update_one({"_id": "o1"}, [{"$set": {"v2": {"$add": ["$version", 1]}}}])
    await check("update with aggregation pipeline", t_update_pipeline)

    async def t_ttl_index():
        await db.sess.create_index("expiresAt", expireAfterSeconds=0)
        idx = await db.sess.index_information()
        return str({k: v.get("expireAfterSeconds") for k, v in idx.items()})
    await check("TTL index creation (expireAfterSeconds)", t_ttl_index)

    async def t_index_mgmt():
        await db.people.create_index([("city", ASCENDING), ("age", DESCENDING)], name="city_age")
        names = sorted((await db.people.index_information()).keys())
        await db.people.drop_index("city_age")
        names2 = sorted((await db.people.index_information()).keys())
        assert "city_age" in names and "city_age" not in names2, (names, names2)
    await check("create_index (named, compound) / index_information / drop_index", t_index_mgmt)

    async def t_unique_on_existing_dups():
        d = db.predup
        await d.insert_many([{"k": 1}, {"k": 1}])
        try:
            await d.create_index("k", unique=True)
        except (DuplicateKeyError, OperationFailure) as e:
            return f"rejected: {type(e).__name__} code={getattr(e, 'code', None)}"
        return "ACCEPTED unique index over existing duplicates"
    await check("create unique index over existing duplicates (info)", t_unique_on_existing_dups)

    async def t_large_cursor():
        await db.big.insert_many([{"i": i, "pad": "x" * 100} for i in range(1500)])
        n = 0
        async for _ in db.big.find({}).batch_size(200):
            n += 1
        assert n == 1500, n
    await check("cursor iteration over 1500 docs (getMore)", t_large_cursor)

    async def t_transaction():
        async with client.start_session() as s:
            async with await s.start_transaction():
                await db.tx.insert_one({"a": 1}, session=s)
    await check("multi-document transaction", t_transaction)

    async def t_watch():
        async with await db.people.watch(max_await_time_ms=100) as cs:
            pass
    await check("change stream (watch)", t_watch)

    async def t_collation():
        n = await p.count_documents({"name": "alice"}, collation={"locale": "en", "strength": 2})
        return f"n={n}"
    await check("collation (case-insensitive)", t_collation)

    async def t_text():
        await db.people.create_index([("name", "text")])
        n = await p.count_documents({"$text": {"$search": "alice"}})
        return f"n={n}"
    await check("text index + $text", t_text)

    async def t_list_drop():
        cols = await db.list_collection_names()
        await db.drop_collection("big")
        cols2 = await db.list_collection_names()
        assert "big" in cols and "big" not in cols2
        await client.drop_database(db.name)
        assert db.name not in await client.list_database_names()
    await check("list_collection_names / drop_collection / drop_database", t_list_drop)

    await client.close()
    npass = sum(1 for r in results if r[1])
    print(f"\nsummary: {npass} supported, {len(results) - npass} unsupported or different")

asyncio.run(main())
