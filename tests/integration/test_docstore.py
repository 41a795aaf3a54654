"""The document store port behaves the same on SQLite and on a MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import re

import pytest

from ppa_runtime.docstore import DuplicateKey


@pytest.fixture
async def coll(runtime):
    c = runtime.docstore("testsvc").collection("things")
    await c.ensure_index("email", unique=True)
    await c.ensure_index("n")
    for i in range(10):
        await c.insert({"_id": f"id{i:02d}", "email": f"user{i}@Example.jp", "n": i, "even": i % 2 == 0,
                        "name": "山田" if i < 3 else "佐藤", "tags": []})
    return c


async def test_get_find_count_sort_and_page(coll):
    assert (await coll.get("id03"))["n"] == 3
    assert await coll.get("missing") is None
    page = await coll.find({"n": {"$gte": 2, "$lt": 8}}, sort=[("n", -1)], skip=1, limit=3)
    assert [d["n"] for d in page] == [6, 5, 4]
    assert await coll.count({"even": True}) == 5
    assert await coll.count({"n": {"$in": [1, 2, 99]}}) == 2
    assert await coll.count({"n": {"$nin": [1, 2]}}) == 8
    assert await coll.count({"$or": [{"n": 1}, {"name": "山田"}]}) == 3
    assert await coll.count({"n": {"$ne": 4}}) == 9


async def test_find_can_leave_fields_out(coll):
    page = await coll.find({"n": {"$lt": 2}}, sort=[("n", 1)], without=("name", "tags"))
    assert page == [{"_id": "id00", "email": "user0@Example.jp", "n": 0, "even": True},
                    {"_id": "id01", "email": "user1@Example.jp", "n": 1, "even": False}]
    assert (await coll.find({"n": 0}, without=("missing",)))[0]["tags"] == []
    with pytest.raises(ValueError):
        await coll.find({}, without=("_id",))


async def test_case_insensitive_regex_search(coll):
    found = await coll.find({"email": {"$regex": "USER1@", "$options": "i"}})
    assert [d["_id"] for d in found] == ["id01"]
    assert await coll.count({"email": {"$regex": "^user"}}) == 10


async def test_a_search_for_plain_text_finds_it_anywhere_and_reads_no_pattern_into_it(coll):
    assert await coll.count({"name": {"$regex": "山", "$options": "i"}}) == 3
    assert await coll.count({"email": {"$regex": re.escape("EXAMPLE.JP"), "$options": "i"}}) == 10
    assert await coll.count({"email": {"$regex": re.escape("EXAMPLE.JP")}}) == 0  # case counts without "i"
    assert await coll.count({"email": {"$regex": re.escape("Example.jp")}}) == 10
    assert await coll.count({"email": {"$regex": re.escape("Example?jp"), "$options": "i"}}) == 0
    assert await coll.count({"email": {"$regex": "Example.jp", "$options": "i"}}) == 10  # "." is a pattern here
    assert await coll.count({"email": {"$regex": re.escape("user1") + "[0-9]?@", "$options": "i"}}) == 1


async def test_a_plain_text_search_looks_in_its_field_alone_and_finds_text_json_escapes(coll):
    await coll.insert({"_id": "q", "email": "q@example.jp", "n": 50, "name": 'say "hi"\\ 山田', "note": "佐藤"})
    assert await coll.count({"name": {"$regex": re.escape('"hi"\\ 山')}}) == 1
    assert await coll.count({"name": {"$regex": "佐藤"}}) == 7  # not the one whose other field says it
    assert await coll.count({"note": {"$regex": "佐藤"}}) == 1


async def test_a_search_of_one_text_over_several_fields_finds_it_in_each_and_only_there(coll):
    await coll.insert({"_id": "a", "email": "Tanaka@Example.jp", "n": 51, "name": "田中", "note": "Yamada"})
    await coll.insert({"_id": "b", "email": "b@example.jp", "n": 52, "name": "山田 太郎", "note": "田中"})

    def over(text: str, fields: tuple[str, ...], options: str = "i") -> dict:
        return {"$or": [{f: {"$regex": re.escape(text), "$options": options}} for f in fields]}

    async def ids(flt: dict) -> list[str]:
        return sorted(d["_id"] for d in await coll.find(flt))

    assert await ids(over("田中", ("name", "email"))) == ["a"]  # b says 田中 in a field not searched
    assert await ids(over("田中", ("name", "note"))) == ["a", "b"]
    assert await ids(over("tanaka", ("name", "email"))) == ["a"]  # in any case, ASCII
    assert await ids(over("tanaka", ("name", "email"), options="")) == []
    assert await ids(over("yamada", ("name", "email"))) == []  # only in the field not searched
    assert await ids(over("YAMADA", ("note", "name"))) == ["a"]
    assert await ids({"n": {"$gte": 52}, **over("山田", ("name", "email"))}) == ["b"]
    assert await ids({"$and": [over("田中", ("name", "note")), over("example", ("email", "note"))]}) == ["a", "b"]
    assert await coll.count(over("user1", ("email", "name"))) == 1


async def test_text_of_every_kind_reads_back_as_written(coll):
    text = "𠮷野家 ｶﾅ カナ 🍱 tab\there \"quoted\" back\\slash\nline é"
    doc = {"_id": "text", "email": "text@example.jp", "n": 99, "name": text, "nested": {"list": [text, "ア"]}}
    await coll.insert(doc)
    assert await coll.get("text") == doc
    assert (await coll.get_many(["text", "id00"]))["text"] == doc
    assert await coll.find({"n": 99}) == [doc]
    assert await coll.find({"n": 99}, without=("email",)) == [{k: v for k, v in doc.items() if k != "email"}]


async def test_unique_index_and_id_refuse_duplicates(coll):
    with pytest.raises(DuplicateKey):
        await coll.insert({"_id": "other", "email": "user1@Example.jp", "n": 100})
    with pytest.raises(DuplicateKey):
        await coll.insert({"_id": "id01", "email": "new@example.jp"})
    assert await coll.count() == 10


async def test_a_dropped_index_no_longer_applies_and_dropping_a_missing_one_is_harmless(coll, runtime):
    with pytest.raises(DuplicateKey):
        await coll.insert({"_id": "dup1", "email": "user1@Example.jp"})
    await coll.drop_index("email")
    await coll.insert({"_id": "dup1", "email": "user1@Example.jp"})  # the unique index is gone
    assert await coll.count({"email": "user1@Example.jp"}) == 2
    await coll.drop_index("email")  # gone already
    await coll.drop_index("never", "made")
    await runtime.docstore("testsvc").collection("nothing_here").drop_index("n")  # no such collection either
    await coll.ensure_index("email")  # made again, not unique this time
    assert await coll.count({"email": "user1@Example.jp"}) == 2


async def test_conditional_update_touches_one_document_once(coll):
    assert await coll.update({"_id": "id01", "n": 1}, {"$set": {"n": 11}, "$inc": {"hits": 1}})
    assert not await coll.update({"_id": "id01", "n": 1}, {"$set": {"n": 12}})
    doc = await coll.get("id01")
    assert doc["n"] == 11 and doc["hits"] == 1
    assert await coll.update({"_id": "id02"}, {"$push": {"tags": {"$each": ["a", "b"]}}})
    assert (await coll.get("id02"))["tags"] == ["a", "b"]


async def test_upsert_inserts_when_missing_and_refuses_duplicate_ids(coll):
    assert await coll.update({"_id": "new", "_v": {"$lt": 1}}, {"$set": {"_v": 1, "email": "n@x.jp"}}, upsert=True)
    assert (await coll.get("new"))["_v"] == 1
    with pytest.raises(DuplicateKey):
        await coll.update({"_id": "new", "_v": {"$lt": 1}}, {"$set": {"_v": 1}}, upsert=True)


async def test_replace_and_delete(coll):
    await coll.replace({"_id": "id05", "email": "changed@example.jp", "n": 50})
    assert (await coll.get("id05"))["n"] == 50
    assert await coll.delete({"n": {"$gte": 8}}) == 3  # 8, 9 and the replaced 50
    assert await coll.count() == 7


async def test_insert_many_skips_existing_ids(coll):
    new = await coll.insert_many([{"_id": "id01", "email": "x@y.jp"}, {"_id": "zz1", "email": "zz1@y.jp"},
                                  {"_id": "zz2", "email": "zz2@y.jp"}])
    assert new == 2
    assert await coll.count() == 12


async def test_replacing_and_updating_hundreds_of_stored_documents_at_once_completes(runtime):
    """FerretDB 1.24 holds a pooled connection per matched statement of an update command until the command ends
    (its SQLite pool is 100): one bulk replace of 250 stored documents, or 250 updates at once, waited forever
    there. Bounded by wait_for only so that a regression fails instead of hanging the suite."""
    c = runtime.docstore("testsvc").collection("many")
    await c.insert_many([{"_id": f"d{i:03d}", "n": 0} for i in range(250)])
    await asyncio.wait_for(c.replace_many([{"_id": f"d{i:03d}", "n": 1} for i in range(250)]), 120)
    await asyncio.wait_for(asyncio.gather(*(c.update({"_id": f"d{i:03d}"}, {"$set": {"n": 2}}) for i in range(250))),
                           120)
    assert await c.count({"n": 2}) == 250

