"""Stored readings seen by several processes: a process that knows a day's chunks still sees the chunks other
processes store after it, and asks the store for fewer of them."""

from __future__ import annotations

from datetime import date

from ppa_metering.store import ChunkCache, ReadingStore

DAY = date(2024, 1, 16)


class Counting:
    """A collection that counts the `_id`s asked for by point lookups."""

    def __init__(self, coll) -> None:
        self.coll = coll
        self.asked: list[str] = []

    async def get_many(self, ids):
        self.asked += ids
        return await self.coll.get_many(ids)

    async def insert_many(self, docs):
        return await self.coll.insert_many(docs)


def entries(first: int, n: int) -> list[tuple]:
    return [(0, first + i, f"{first + i}.5", None) for i in range(n)]


async def test_a_known_day_still_shows_chunks_other_processes_stored(runtime):
    coll = runtime.docstore("metering").collection("readings")
    one, other = Counting(coll), Counting(coll)
    api_a, api_b = ReadingStore(one), ReadingStore(other)  # two device API processes
    await api_a.add("S1", {DAY: entries(0, 3)}, {})
    found, counts = await api_a.days([("S1", DAY)])
    assert found[("S1", DAY)] == entries(0, 3) and counts[("S1", DAY)] == 1

    _, seen_by_b = await api_b.days([("S1", DAY)])
    await api_b.add("S1", {DAY: entries(10, 2)}, {DAY: seen_by_b[("S1", DAY)]})

    one.asked.clear()
    found, counts = await api_a.days([("S1", DAY)])
    assert found[("S1", DAY)] == entries(0, 3) + entries(10, 2)
    assert counts[("S1", DAY)] == 2
    # chunk 0 is known: only chunk 1 (found), then chunks 2 and 3 (absent) were looked up
    assert one.asked == ["S1|2024-01-16|1", "S1|2024-01-16|2", "S1|2024-01-16|3"]

    one.asked.clear()
    again, _ = await api_a.days([("S1", DAY)])
    assert again == found and one.asked == ["S1|2024-01-16|2"]
    # what the cache returns is a copy: changing it changes nothing known
    again[("S1", DAY)].clear()
    assert (await api_a.days([("S1", DAY)]))[0][("S1", DAY)] == entries(0, 3) + entries(10, 2)


async def test_a_process_that_stored_a_chunk_knows_it_without_reading_it(runtime):
    coll = Counting(runtime.docstore("metering").collection("readings"))
    store = ReadingStore(coll)
    await store.add("S2", {DAY: entries(0, 4)}, {})
    found, counts = await store.days([("S2", DAY)])
    assert found[("S2", DAY)] == entries(0, 4) and counts[("S2", DAY)] == 1
    assert coll.asked == ["S2|2024-01-16|1"]


async def test_a_fresh_process_reads_every_chunk_of_a_day(runtime):
    coll = runtime.docstore("metering").collection("readings")
    writer = ReadingStore(coll)
    for k in range(5):
        _, counts = await writer.days([("S3", DAY)])
        await writer.add("S3", {DAY: entries(k * 10, 2)}, {DAY: counts[("S3", DAY)]})
    found, counts = await ReadingStore(coll).days([("S3", DAY)])
    assert counts[("S3", DAY)] == 5
    assert found[("S3", DAY)] == [e for k in range(5) for e in entries(k * 10, 2)]


def test_the_cache_keeps_recent_days_within_its_bound_and_never_forgets_a_chunk_it_knows():
    cache = ChunkCache(max_entries=10)
    cache.put(("S", date(2024, 1, 1)), 1, tuple(entries(0, 4)))
    cache.put(("S", date(2024, 1, 2)), 1, tuple(entries(0, 4)))
    assert cache.get(("S", date(2024, 1, 1)))[0] == 1  # now the most recently used
    cache.put(("S", date(2024, 1, 3)), 1, tuple(entries(0, 4)))
    assert cache.size <= 10
    assert cache.get(("S", date(2024, 1, 2))) == (0, ())  # least recently used: dropped
    assert cache.get(("S", date(2024, 1, 1)))[0] == 1
    cache.put(("S", date(2024, 1, 1)), 0, ())  # fewer chunks than known: changes nothing
    assert cache.get(("S", date(2024, 1, 1))) == (1, tuple(entries(0, 4)))


async def test_chunks_stored_as_arrays_by_an_earlier_version_read_alike(runtime):
    coll = runtime.docstore("metering").collection("readings")
    old = entries(0, 3)
    await coll.insert({"_id": "S4|2024-01-16|0", "b": "t", "serial_number": "S4", "date": "2024-01-16",
                       "c": [e[0] for e in old], "t": [e[1] for e in old], "k": [e[2] for e in old],
                       "m": [e[3] for e in old]})
    store = ReadingStore(coll)
    await store.add("S4", {DAY: entries(10, 2)}, {DAY: 1})
    found, counts = await ReadingStore(coll).days([("S4", DAY)])
    assert counts[("S4", DAY)] == 2 and found[("S4", DAY)] == old + entries(10, 2)
    assert "c" not in await coll.get("S4|2024-01-16|1")  # new chunks hold their readings as one text
