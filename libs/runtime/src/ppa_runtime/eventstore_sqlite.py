"""Event store on SQLite: one row per event, UNIQUE(stream, version), relay position in the same file."""

from __future__ import annotations

import asyncio
import sqlite3

from ppa_contracts import Envelope
from ppa_runtime.eventstore import ConcurrencyConflict, Pending, check_versions
from ppa_runtime.sqlite import SqliteDb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    topic TEXT,
    envelope TEXT NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS relay_position (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
"""


class SqliteEventStore:
    """Events of one service in its SQLite file."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db
        self.appended = asyncio.Event()
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self.db.script(_SCHEMA)
            self._ready = True

    async def append(self, stream: str, expected_version: int, events: list[tuple[str | None, Envelope]]) -> int:
        check_versions(stream, expected_version, events)
        await self._ensure()

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
            if (row[0] or 0) != expected_version:
                raise ConcurrencyConflict(stream, expected_version)
            try:
                conn.executemany(
                    "INSERT INTO events (stream, version, topic, envelope) VALUES (?, ?, ?, ?)",
                    [(stream, e.aggregateversion, topic, e.to_json().decode()) for topic, e in events],
                )
            except sqlite3.IntegrityError as exc:
                raise ConcurrencyConflict(stream, expected_version) from exc

        await self.db.write(run)
        self.appended.set()
        return expected_version + len(events)

    async def append_many(self, commits: list[tuple[str, int, list[tuple[str | None, Envelope]]]]) -> set[str]:
        for stream, expected, events in commits:
            check_versions(stream, expected, events)
        await self._ensure()
        rows = [[(stream, e.aggregateversion, topic, e.to_json().decode()) for topic, e in events]
                for stream, _, events in commits]

        def run(conn: sqlite3.Connection) -> set[str]:
            conflicts: set[str] = set()
            for (stream, expected, _), commit_rows in zip(commits, rows, strict=True):
                row = conn.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
                if (row[0] or 0) != expected:
                    conflicts.add(stream)
                    continue
                conn.executemany("INSERT INTO events (stream, version, topic, envelope) VALUES (?, ?, ?, ?)",
                                 commit_rows)
            return conflicts

        conflicts = await self.db.write(run)  # one transaction: every commit that did not conflict, or none
        self.appended.set()
        return conflicts

    async def read(self, stream: str) -> list[Envelope]:
        await self._ensure()
        rows = await self.db.read(
            lambda c: c.execute("SELECT envelope FROM events WHERE stream = ? ORDER BY version", (stream,)).fetchall()
        )
        return [Envelope.from_json(r[0]) for r in rows]

    async def pending(self, limit: int = 500) -> list[Pending]:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
            row = conn.execute("SELECT position FROM relay_position WHERE name = 'outbox'").fetchone()
            after = row[0] if row else 0
            return conn.execute(
                "SELECT position, topic, envelope FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()

        rows = await self.db.read(run)
        # private events (no topic) are still passed so the relay's position moves past them
        return [Pending(topic, Envelope.from_json(env), pos) for pos, topic, env in rows]

    async def mark_published(self, items: list[Pending]) -> None:
        if not items:
            return
        last = max(i.marker for i in items)
        await self.db.write(
            lambda c: c.execute(
                "INSERT INTO relay_position (name, position) VALUES ('outbox', ?) "
                "ON CONFLICT(name) DO UPDATE SET position = MAX(position, excluded.position)",
                (last,),
            )
        )
