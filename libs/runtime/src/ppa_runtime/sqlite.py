"""One SQLite file in WAL mode, used from asyncio: each call runs a whole transaction in a thread."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


class SqliteDb:
    """A SQLite database file shared by the coroutines of one process and, through WAL, other processes."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.create_function("regexp", 2, _regexp, deterministic=True)
        self._lock = asyncio.Lock()
        # Reads use their own connection: under WAL they see the last commit without waiting for a
        # write transaction (and its fsync) to end.
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._reader.execute("PRAGMA busy_timeout=30000")
        self._reader.create_function("regexp", 2, _regexp, deterministic=True)
        self._read_lock = asyncio.Lock()
        self._queued: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future]] = []
        self._flushing = False
        self._flusher: asyncio.Task | None = None
        self.known_tables: set[str] = set()  # created in this process (saves a CREATE IF NOT EXISTS per call)

    def _tx(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        conn = self._conn if write else self._reader
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _group(self, queued: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future]]) -> list[tuple[bool, Any]]:
        """Run queued writes in one transaction, each in a savepoint: one that raises changes nothing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[bool, Any]] = []
        try:
            for fn, args, _ in queued:
                conn.execute("SAVEPOINT w")
                try:
                    outcomes.append((True, fn(conn, *args)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    outcomes.append((False, exc))
                conn.execute("RELEASE w")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return outcomes

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in a write transaction; returns once it is committed.

        Writes queued while another commits share the next transaction (group commit): with
        `synchronous=FULL` one fsync then makes many concurrent callers' writes durable."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.append((fn, args, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queued:
                queued, self._queued = self._queued, []
                try:
                    async with self._lock:
                        outcomes = await asyncio.to_thread(self._group, queued)
                except BaseException as exc:  # the transaction itself failed: every caller learns why
                    for _, _, future in queued:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), (ok, value) in zip(queued, outcomes, strict=True):
                    if not future.done():
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self._flushing = False

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one read transaction."""
        async with self._read_lock:
            work = asyncio.ensure_future(asyncio.to_thread(self._tx, fn, args, False))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                # the thread goes on with the reader connection: keep the lock until it is done with it
                await asyncio.gather(work, return_exceptions=True)
                raise

    async def read_small(self, fn: Callable[..., T], *args: Any) -> T:
        """`read` for a few rows by primary key, run on the calling thread. Such a read is answered from the
        page cache in microseconds, less than handing it to a thread and back costs; under WAL it never
        waits for a writer. Longer reads (scans, searches) belong in `read`, off the event loop."""
        async with self._read_lock:
            return self._tx(fn, args, False)

    async def script(self, sql: str) -> None:
        """Run DDL statements (each its own transaction; use IF NOT EXISTS)."""
        async with self._lock:
            await asyncio.to_thread(self._conn.executescript, sql)

    def close(self) -> None:
        """Close the connections."""
        self._reader.close()
        self._conn.close()
