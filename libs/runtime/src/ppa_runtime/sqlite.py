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

    def _tx(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one write transaction."""
        async with self._lock:
            return await asyncio.to_thread(self._tx, fn, args, True)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one read transaction."""
        async with self._lock:
            return await asyncio.to_thread(self._tx, fn, args, False)

    async def script(self, sql: str) -> None:
        """Run DDL statements (each its own transaction; use IF NOT EXISTS)."""
        async with self._lock:
            await asyncio.to_thread(self._conn.executescript, sql)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
