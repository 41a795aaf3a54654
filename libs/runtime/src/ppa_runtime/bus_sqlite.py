"""Embedded event log in SQLite: topics with offsets and consumer-group positions, durable across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson

from ppa_contracts import Envelope
from ppa_runtime import tracing
from ppa_runtime.bus import GroupLag, Position, Record, SoleLeadership, Start
from ppa_runtime.consumer import Shard
from ppa_runtime.sqlite import SqliteDb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    at REAL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    committed_at REAL,
    PRIMARY KEY (grp, topic, partition)
);
"""
# logs written before append and commit times were kept get the columns (NULL for old rows)
_ADDED_COLUMNS = {"log": ("at", "REAL"), "group_offsets": ("committed_at", "REAL")}
_INDEXES = "CREATE INDEX IF NOT EXISTS log_topic_at ON log (topic, at);"


def _last_offset(conn: sqlite3.Connection, topic: str) -> int | None:
    """The topic's last offset (None: no record yet). The query names the one partition: with the topic alone,
    SQLite walks the topic's whole index (0.5 s at 3 million records) instead of taking its last entry."""
    return conn.execute("SELECT MAX(offset) FROM log WHERE topic = ? AND partition = 0", (topic,)).fetchone()[0]


def _own(shard: Shard | None, topic: str) -> tuple[str, tuple[str, ...]]:
    """A condition on a log row, true when the row belongs to the shard, and its parameters: a pattern of the key
    (the subject), which decides without reading the record's JSON."""
    if shard is None or topic not in shard.topics:
        return "", ()
    tail = "?" * (-shard.position - 1)
    if shard.index == 0:  # shard 0 also has the subjects without a digit there
        others = "".join(shard.digits(i) for i in range(1, shard.count))
        return " AND NOT (key GLOB ?)", (f"*[{others}]{tail}",)
    return " AND key GLOB ?", (f"*[{shard.digits()}]{tail}",)


def _passed(conn: sqlite3.Connection, topic: str, after: int, own: list[Record], limit: int) -> list[Record]:
    """After a shard's rows of a topic: when they did not fill the batch, every row up to the topic's end was
    looked at, so a `skip` record at its last offset lets the shard's position pass the other shards' rows
    too (a full batch is passed by its last row)."""
    if len(own) >= limit:
        return []
    end = _last_offset(conn, topic)
    seen = own[-1].offset if own else after
    return [Record(topic, 0, end, picked=((), ()), skip=True)] if end is not None and end > seen else []


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

_POLL_SECONDS = 0.25


async def _fetch(bus: SqliteBus, read: Callable[[int], Awaitable[list[Record]]], timeout: float,
                 max_records: int) -> list[Record]:
    """Read what is there; when nothing is, wait for a publish (or poll) until `timeout` has passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        bus.published.clear()
        records = await read(max_records)
        remaining = deadline - asyncio.get_running_loop().time()
        if records or remaining <= 0:
            return records
        try:
            await asyncio.wait_for(bus.published.wait(), min(remaining, _POLL_SECONDS))
        except TimeoutError:
            pass


class SqliteSubscription:
    """One consumer of a group; the embedded log has a single partition per topic.

    Like a Kafka consumer's fetcher, it reads ahead: once a fetch returns records, the next batch is read and
    decoded in the database's thread while the caller applies these (and waits on its own writes)."""

    def __init__(self, bus: SqliteBus, group: str, topics: list[str], fields: tuple[str, ...] = (),
                 picked_only: frozenset[str] = frozenset(), shard: Shard | None = None) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.shard = shard  # of a split topic, only the shard's rows are read (and one `skip` record, see _passed)
        self.fields = tuple(fields)  # JSON paths read for each record (Record.pick)
        self.picked_only = picked_only if fields else frozenset()  # types handed over without their JSON
        self.positions: dict[str, int] = {}  # committed
        self.fetched: dict[str, int] = {}  # handed out, like a Kafka consumer's fetch position
        self._ahead: asyncio.Task[list[Record]] | None = None  # the next batch, being read
        self._buffer: list[Record] = []  # read, not yet handed out

    async def load(self) -> None:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            marks = ",".join("?" * len(self.topics))
            rows = conn.execute(
                f"SELECT topic, offset FROM group_offsets WHERE grp = ? AND topic IN ({marks})",
                (self.group, *self.topics),
            ).fetchall()
            return {t: o for t, o in rows}

        self.positions = {t: -1 for t in self.topics} | await self.bus.db.read(run)
        self.fetched = dict(self.positions)

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        if not self._buffer and self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            self._buffer = await ahead
        if not self._buffer:
            self._buffer = await _fetch(self.bus, self._read, timeout, max_records)
        records, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
        if records and not self._buffer:
            self._ahead = asyncio.get_running_loop().create_task(self._read(max_records))
        return records

    async def _read(self, max_records: int) -> list[Record]:
        after = dict(self.fetched)
        paths = self.fields
        if paths:
            return self._advance(await self.bus.db.read(lambda conn: self._read_picked(conn, after, max_records)))

        def run(conn: sqlite3.Connection) -> list[Record]:
            out: list[Record] = []
            for topic in self.topics:
                own, mine = _own(self.shard, topic)
                limit = max_records - len(out)
                rows = conn.execute(
                    f"SELECT offset, envelope FROM log WHERE topic = ? AND partition = 0 AND offset > ?{own} "
                    "ORDER BY offset LIMIT ?", (topic, after[topic], *mine, limit)).fetchall()
                records = [Record(topic, 0, o, raw=orjson.loads(e)) for o, e in rows]
                out += records + (_passed(conn, topic, after[topic], records, limit) if own else [])
                if len(out) >= max_records:
                    break
            return out

        return self._advance(await self.bus.db.read(run))

    def _read_picked(self, conn: sqlite3.Connection, after: dict[str, int], max_records: int) -> list[Record]:
        """The next records with the values at `fields` read by SQLite, each topic's rows as one flat JSON array
        (offset, JSON text, values; offset, ...): SQLite builds it without the interpreter's lock, which a row at a
        time would take and give back per row (while the consumer's own thread keeps it busy), and one flat list
        is a few objects for the collector where a list per row would be thousands. Records of `picked_only` types
        come without their JSON text (`complete` reads it); the others' JSON is decoded only if asked for."""
        paths = self.fields
        # json_extract of several paths gives their values as one JSON array (of one path, the value itself: so
        # one path is asked for twice); its brackets are cut off to splice the values into the row's
        asked = paths if len(paths) > 1 else paths * 2
        n = len(paths)
        stride = 2 + len(asked)  # offset, text, the values asked for
        bare = sorted(self.picked_only)
        text = (f"CASE WHEN json_extract(envelope, '$.type') IN ({', '.join('?' * len(bare))}) THEN NULL "
                "ELSE envelope END" if bare else "envelope")
        out: list[Record] = []
        for topic in self.topics:
            own, mine = _own(self.shard, topic)
            limit = max_records - len(out)
            (rows,) = conn.execute(
                "SELECT '[' || coalesce(group_concat(substr(head, 2, length(head) - 2) || ',' || "
                "substr(picked, 2, length(picked) - 2), ','), '') || ']' FROM (SELECT "
                f"json_array(offset, {text}) AS head, json_extract(envelope, {', '.join('?' * len(asked))}) AS picked "
                f"FROM log WHERE topic = ? AND partition = 0 AND offset > ?{own} ORDER BY offset LIMIT ?)",
                (*bare, *asked, topic, after[topic], *mine, limit),
            ).fetchone()
            flat = orjson.loads(rows)
            starts = range(0, len(flat), stride)
            offsets = flat[::stride]
            if any(a > b for a, b in zip(offsets, offsets[1:], strict=False)):  # SQLite does not promise the order
                starts = sorted(starts, key=flat.__getitem__)
            records = [Record(topic, 0, flat[i], text=flat[i + 1], picked=(paths, tuple(flat[i + 2:i + 2 + n])))
                       for i in starts]
            out += records + (_passed(conn, topic, after[topic], records, limit) if own else [])
            if len(out) >= max_records:
                break
        return out

    async def complete(self, records: list[Record]) -> list[Record]:
        bare = [r for r in records if not r.whole]
        if not bare:
            return records

        def run(conn: sqlite3.Connection) -> dict[tuple[str, int], str]:
            texts: dict[tuple[str, int], str] = {}
            for i in range(0, len(bare), 500):
                part = bare[i:i + 500]
                for topic in {r.topic for r in part}:
                    offsets = [r.offset for r in part if r.topic == topic]
                    texts |= {(topic, o): e for o, e in conn.execute(
                        f"SELECT offset, envelope FROM log WHERE topic = ? AND partition = 0 "
                        f"AND offset IN ({', '.join('?' * len(offsets))})", (topic, *offsets))}
            return texts

        texts = await self.bus.db.read(run)
        return [r if r.whole else Record(r.topic, r.partition, r.offset, raw=orjson.loads(texts[(r.topic, r.offset)]))
                for r in records]

    def _advance(self, records: list[Record]) -> list[Record]:
        for r in records:
            self.fetched[r.topic] = max(self.fetched[r.topic], r.offset)
        return records

    async def commit(self, records: list[Record]) -> None:
        last: dict[str, int] = {}
        for r in records:
            last[r.topic] = max(r.offset, last.get(r.topic, -1))
        if not last:
            return

        now = time.time()

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO group_offsets (grp, topic, partition, offset, committed_at) VALUES (?, ?, 0, ?, ?) "
                "ON CONFLICT(grp, topic, partition) DO UPDATE SET offset = MAX(offset, excluded.offset), "
                "committed_at = excluded.committed_at",
                [(self.group, t, o, now) for t, o in last.items()],
            )

        await self.bus.db.write(run)
        for topic, offset in last.items():
            self.positions[topic] = max(self.positions[topic], offset)

    async def close(self) -> None:
        if self._ahead is not None:  # read ahead, never handed out: the next consumer of the group reads it again
            # let the read end rather than cancel it: its thread would go on using the reader connection
            await asyncio.gather(self._ahead, return_exceptions=True)
            self._ahead = None


class SqliteTail:
    """Reads the log from given offsets, for dashboards and tools; belongs to no group."""

    def __init__(self, bus: SqliteBus, positions: dict[Position, int]) -> None:
        self.bus = bus
        self._next = dict(positions)

    def positions(self) -> dict[Position, int]:
        return dict(self._next)

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        return await _fetch(self.bus, self._read, timeout, max_records)

    async def _read(self, max_records: int) -> list[Record]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, int, int, str]]:
            out: list[tuple[str, int, int, str]] = []
            for (topic, partition), offset in self._next.items():
                out += conn.execute(
                    "SELECT topic, partition, offset, envelope FROM log WHERE topic = ? AND partition = ? "
                    "AND offset >= ? ORDER BY offset LIMIT ?",
                    (topic, partition, offset, max_records - len(out)),
                ).fetchall()
                if len(out) >= max_records:
                    break
            return out

        rows = await self.bus.db.read(run)
        for topic, partition, offset, _ in rows:
            self._next[(topic, partition)] = max(self._next[(topic, partition)], offset + 1)
        return [Record(t, p, o, raw=orjson.loads(e)) for t, p, o, e in rows]

    async def close(self) -> None:
        return None


class SqliteBus:
    """The embedded runtime's event log: a durable, ordered, offset-addressed log per topic."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db
        self.published = asyncio.Event()
        self._ready = False

    async def start(self) -> None:
        if not self._ready:
            await self.db.script(_SCHEMA)

            def migrate(conn: sqlite3.Connection) -> None:
                for table, (column, kind) in _ADDED_COLUMNS.items():
                    if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

            await self.db.write(migrate)
            await self.db.script(_INDEXES)
            self._ready = True

    async def publish(self, topic: str, events: list[Envelope], timeout: float | None = None) -> None:
        # an in-process file: no outage to wait out, so no timeout to apply
        if not events:
            return
        rows = [(e.subject, e.to_json().decode()) for e in events]

        def run(conn: sqlite3.Connection) -> None:
            last = _last_offset(conn, topic)
            start = -1 if last is None else last
            now = time.time()
            conn.executemany(
                "INSERT INTO log (topic, partition, offset, key, envelope, at) VALUES (?, 0, ?, ?, ?, ?)",
                [(topic, start + i, key, env, now) for i, (key, env) in enumerate(rows, start=1)],
            )

        with tracing.publishing("sqlite", topic, events):
            await self.db.write(run)
        self.published.set()

    async def subscribe(self, group: str, topics: list[str], fields: tuple[str, ...] = (),
                        picked_only: frozenset[str] = frozenset(), shard: Shard | None = None) -> SqliteSubscription:
        sub = SqliteSubscription(self, group, topics, fields, picked_only, shard)
        await sub.load()
        return sub

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        end = await self.db.read(lambda c: _last_offset(c, topic))
        if end is None:
            return 0
        count, position = 0, -1
        while position < end:
            rows = await self.db.read(
                lambda c: c.execute(
                    "SELECT partition, offset, envelope FROM log WHERE topic = ? AND partition = 0 AND offset > ? "
                    "AND offset <= ? ORDER BY offset LIMIT 1000",
                    (topic, position, end),
                ).fetchall()
            )
            if not rows:
                break
            for partition, offset, env in rows:
                await handle(Record(topic, partition, offset, raw=orjson.loads(env)))
                position = offset
                count += 1
        return count

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]:
        def run(conn: sqlite3.Connection) -> list[GroupLag]:
            out = []
            for topic in topics:
                end = _last_offset(conn, topic)
                done = conn.execute(
                    "SELECT offset, committed_at FROM group_offsets WHERE grp = ? AND topic = ? AND partition = 0",
                    (group, topic),
                ).fetchone()
                committed = (done[0] + 1) if done else 0
                first = conn.execute("SELECT at FROM log WHERE topic = ? AND partition = 0 AND offset = ?",
                                     (topic, committed)).fetchone()
                out.append(GroupLag(group, topic, 0, committed, (end + 1) if end is not None else 0,
                                    committed_at=_moment(done[1]) if done else None,
                                    pending_since=_moment(first[0]) if first else None))
            return out

        return await self.db.read(run)

    async def topics(self) -> list[str]:
        # from one topic to the next along the index (a DISTINCT would read every row's entry)
        rows = await self.db.read(lambda c: c.execute(
            "WITH RECURSIVE t(topic) AS (SELECT MIN(topic) FROM log UNION ALL SELECT (SELECT MIN(topic) FROM log "
            "WHERE topic > t.topic) FROM t WHERE t.topic IS NOT NULL) SELECT topic FROM t WHERE topic IS NOT NULL"
        ).fetchall())
        return [r[0] for r in rows]

    async def ends(self, topics: list[str]) -> dict[Position, int]:
        def run(conn: sqlite3.Connection) -> dict[Position, int]:
            out = {}
            for topic in topics:
                end = _last_offset(conn, topic)
                out[(topic, 0)] = 0 if end is None else end + 1
            return out

        return await self.db.read(run)

    async def offsets_at(self, topics: list[str], times: list[datetime]) -> list[dict[Position, int]]:
        ends = await self.ends(topics)

        def run(conn: sqlite3.Connection) -> list[dict[Position, int]]:
            out = []
            for when in times:
                at: dict[Position, int] = {}
                for topic in topics:
                    first = conn.execute("SELECT MIN(offset) FROM log WHERE topic = ? AND partition = 0 AND at >= ?",
                                         (topic, when.timestamp())).fetchone()[0]
                    at[(topic, 0)] = ends[(topic, 0)] if first is None else first
                out.append(at)
            return out

        return await self.db.read(run)

    async def tail(self, topics: list[str], start: Start = "end") -> SqliteTail:
        if start == "end":
            positions = await self.ends(topics)
        elif start == "beginning":
            positions = {(t, 0): 0 for t in topics}
        else:
            positions = {(t, 0): start.get((t, 0), 0) for t in topics}
        return SqliteTail(self, positions)

    async def leadership(self, name: str) -> SoleLeadership:
        return SoleLeadership()  # one process runs a service's worker on this runtime

    async def close(self) -> None:
        return None
