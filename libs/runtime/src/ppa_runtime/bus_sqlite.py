"""Embedded event log in SQLite: topics with offsets and consumer-group positions, durable across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

from ppa_contracts import Envelope
from ppa_runtime.bus import GroupLag, Record
from ppa_runtime.sqlite import SqliteDb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""

_POLL_SECONDS = 0.25


class SqliteSubscription:
    """One consumer of a group; the embedded log has a single partition per topic."""

    def __init__(self, bus: SqliteBus, group: str, topics: list[str]) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.positions: dict[str, int] = {}  # committed
        self.fetched: dict[str, int] = {}  # handed out, like a Kafka consumer's fetch position

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
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self.bus.published.clear()
            records = await self._read(max_records)
            remaining = deadline - asyncio.get_running_loop().time()
            if records or remaining <= 0:
                return records
            try:
                await asyncio.wait_for(self.bus.published.wait(), min(remaining, _POLL_SECONDS))
            except TimeoutError:
                pass

    async def _read(self, max_records: int) -> list[Record]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, int, int, str]]:
            out: list[tuple[str, int, int, str]] = []
            for topic in self.topics:
                out += conn.execute(
                    "SELECT topic, partition, offset, envelope FROM log WHERE topic = ? AND partition = 0 "
                    "AND offset > ? ORDER BY offset LIMIT ?",
                    (topic, self.fetched[topic], max_records - len(out)),
                ).fetchall()
                if len(out) >= max_records:
                    break
            return out

        rows = await self.bus.db.read(run)
        for topic, _, offset, _ in rows:
            self.fetched[topic] = max(self.fetched[topic], offset)
        return [Record(t, p, o, Envelope.from_json(e)) for t, p, o, e in rows]

    async def commit(self, records: list[Record]) -> None:
        last: dict[str, int] = {}
        for r in records:
            last[r.topic] = max(r.offset, last.get(r.topic, -1))
        if not last:
            return

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO group_offsets (grp, topic, partition, offset) VALUES (?, ?, 0, ?) "
                "ON CONFLICT(grp, topic, partition) DO UPDATE SET offset = MAX(offset, excluded.offset)",
                [(self.group, t, o) for t, o in last.items()],
            )

        await self.bus.db.write(run)
        for topic, offset in last.items():
            self.positions[topic] = max(self.positions[topic], offset)

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
            self._ready = True

    async def publish(self, topic: str, events: list[Envelope]) -> None:
        if not events:
            return
        rows = [(e.subject, e.to_json().decode()) for e in events]

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT MAX(offset) FROM log WHERE topic = ? AND partition = 0", (topic,)).fetchone()
            start = -1 if row[0] is None else row[0]
            conn.executemany(
                "INSERT INTO log (topic, partition, offset, key, envelope) VALUES (?, 0, ?, ?, ?)",
                [(topic, start + i, key, env) for i, (key, env) in enumerate(rows, start=1)],
            )

        await self.db.write(run)
        self.published.set()

    async def subscribe(self, group: str, topics: list[str]) -> SqliteSubscription:
        sub = SqliteSubscription(self, group, topics)
        await sub.load()
        return sub

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        end = await self.db.read(
            lambda c: c.execute("SELECT MAX(offset) FROM log WHERE topic = ?", (topic,)).fetchone()[0]
        )
        if end is None:
            return 0
        count, position = 0, -1
        while position < end:
            rows = await self.db.read(
                lambda c: c.execute(
                    "SELECT partition, offset, envelope FROM log WHERE topic = ? AND offset > ? AND offset <= ? "
                    "ORDER BY offset LIMIT 1000",
                    (topic, position, end),
                ).fetchall()
            )
            if not rows:
                break
            for partition, offset, env in rows:
                await handle(Record(topic, partition, offset, Envelope.from_json(env)))
                position = offset
                count += 1
        return count

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]:
        def run(conn: sqlite3.Connection) -> list[GroupLag]:
            out = []
            for topic in topics:
                end = conn.execute("SELECT MAX(offset) FROM log WHERE topic = ?", (topic,)).fetchone()[0]
                done = conn.execute(
                    "SELECT offset FROM group_offsets WHERE grp = ? AND topic = ? AND partition = 0", (group, topic)
                ).fetchone()
                out.append(GroupLag(group, topic, 0, (done[0] + 1) if done else 0, (end + 1) if end is not None else 0))
            return out

        return await self.db.read(run)

    async def close(self) -> None:
        return None
