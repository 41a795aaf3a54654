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

    def __init__(self, path: Path, synchronous: str = "FULL", readers: int = 4) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.create_function("regexp", 2, _regexp, deterministic=True)
        self._lock = asyncio.Lock()
        # Reads use connections of their own: under WAL each sees the last commit without waiting for a
        # write transaction (and its fsync) to end, and concurrent reads run side by side in their threads
        # (SQLite lets go of the GIL while it works). Opened as needed, up to `readers`; kept once opened.
        self._free_readers = asyncio.Semaphore(readers)
        self._idle: list[sqlite3.Connection] = []
        self._opened: list[sqlite3.Connection] = []
        self._queued: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future]] = []
        self._flushing = False
        self._flusher: asyncio.Task | None = None
        self.known_tables: set[str] = set()  # created in this process (saves a CREATE IF NOT EXISTS per call)

    def _tx(self, conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn.execute("BEGIN")
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

    def _open_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.create_function("regexp", 2, _regexp, deterministic=True)
        self._opened.append(conn)
        return conn

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one read transaction, on a reader connection no other read is using."""
        await self._free_readers.acquire()
        try:
            conn = self._idle.pop() if self._idle else self._open_reader()
        except BaseException:
            self._free_readers.release()
            raise

        def give_back(_: asyncio.Future) -> None:  # once the thread is done with the connection, however it ended
            self._idle.append(conn)
            self._free_readers.release()

        work = asyncio.ensure_future(asyncio.to_thread(self._tx, conn, fn, args))
        work.add_done_callback(give_back)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # the thread goes on with the connection: the cancelled read ends only once it is done
            await asyncio.gather(work, return_exceptions=True)
            raise

    async def script(self, sql: str) -> None:
        """Run DDL statements (each its own transaction; use IF NOT EXISTS)."""
        async with self._lock:
            await asyncio.to_thread(self._conn.executescript, sql)

    def close(self) -> None:
        """Close the connections."""
        for conn in self._opened:
            conn.close()
        self._conn.close()
