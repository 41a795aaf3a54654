"""Document store on SQLite: one table per collection, JSON documents, expression indexes."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import orjson

from ppa_runtime.docstore import DuplicateKey, Filter, Sort, apply_update, equality_fields, physical, _walk
from ppa_runtime.sqlite import SqliteDb

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _expr(field: str) -> str:
    if field == "_id":
        return "id"
    if not _FIELD.match(field):
        raise ValueError(f"bad field name {field!r}")
    return f"json_extract(doc, '$.{field}')"


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


_ESCAPED = re.compile(r"\\(.)", re.S)


def _literal(pattern: str) -> str | None:
    """The text a pattern matches when it is plain text (as `re.escape` writes it), else None."""
    text = _ESCAPED.sub(r"\1", pattern)
    return text if text and re.escape(text) == pattern else None


_ESCAPED_IN_JSON = re.compile(r'["\\\x00-\x1f]')  # what JSON writes escaped (other text is written as it is)


def _plain(options: str, literal: str | None) -> str | None:
    """A plain-text pattern's text when C can compare it as it is (exactly, or in any case when it has none)."""
    if literal is not None and ("i" not in options or literal == literal.lower() == literal.upper()):
        return literal
    return None


def _document_check(options: str, literal: str | None) -> tuple[str, str] | None:
    """A look for a plain-text `$regex`'s text in the stored JSON, which holds it as it is unless JSON escapes
    one of its characters: a document without it is passed over before its JSON is parsed."""
    if literal is None or _ESCAPED_IN_JSON.search(literal):
        return None
    if _plain(options, literal) is not None:
        return "instr(doc, ?) > 0", literal
    if literal.isascii():  # in any case: SQLite's lower() folds ASCII
        return "instr(lower(doc), ?) > 0", literal.lower()
    return None


def _looked_for(filter: Any) -> tuple[str, str] | None:
    """The stored-JSON look of a one-field `$regex` filter, else None."""
    if not isinstance(filter, dict) or len(filter) != 1:
        return None
    (key, value), = filter.items()
    if key.startswith("$") or _expr(key) == "id" or not isinstance(value, dict) or "$regex" not in value:
        return None
    if set(value) - {"$regex", "$options"}:
        return None
    return _document_check(value.get("$options", ""), _literal(value["$regex"]))


def compile_filter(filter: Filter | None, looked_for: tuple[str, str] | None = None) -> tuple[str, list[Any]]:
    """Translate a MongoDB-style filter into a SQL condition and its parameters (`looked_for`: a look in the
    stored JSON an enclosing condition has already made)."""
    if not filter:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    for key, value in filter.items():
        if key == "$or" and len(value) > 1 and len(checks := {_looked_for(f) for f in value}) == 1 and (
                check := checks.pop()) is not None and check != looked_for:
            # the same text in several fields (a search over name, kana, e-mail…): look for it in the stored
            # JSON once, then in each field
            sql, sub_params = compile_filter({"$or": value}, looked_for=check)
            parts.append(f"({check[0]} AND {sql})")
            params.extend([check[1], *sub_params])
            continue
        if key in ("$or", "$and"):
            subs = [compile_filter(f, looked_for) for f in value]
            joiner = " OR " if key == "$or" else " AND "
            parts.append("(" + joiner.join(s for s, _ in subs) + ")" if subs else ("0" if key == "$or" else "1"))
            for _, p in subs:
                params.extend(p)
            continue
        expr = _expr(key)
        ops = value if isinstance(value, dict) and value and all(k.startswith("$") for k in value) else {"$eq": value}
        options = ops.get("$options", "")
        for op, arg in ops.items():
            if op == "$options":
                continue
            if op == "$eq":
                if arg is None:
                    parts.append(f"{expr} IS NULL")
                else:
                    parts.append(f"{expr} = ?")
                    params.append(_param(arg))
            elif op == "$ne":
                if arg is None:
                    parts.append(f"{expr} IS NOT NULL")
                else:
                    parts.append(f"({expr} IS NULL OR {expr} != ?)")
                    params.append(_param(arg))
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                sym = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
                parts.append(f"{expr} {sym} ?")
                params.append(_param(arg))
            elif op in ("$in", "$nin"):
                items = list(arg)
                if not items:
                    parts.append("0" if op == "$in" else "1")
                    continue
                marks = ",".join("?" * len(items))
                parts.append(f"{expr} {'IN' if op == '$in' else 'NOT IN'} ({marks})")
                params.extend(_param(i) for i in items)
            elif op == "$exists":
                parts.append(f"{expr} IS {'NOT ' if arg else ''}NULL")
            elif op == "$regex":
                literal = _literal(arg)
                if (plain := _plain(options, literal)) is not None:
                    sql, value = f"instr({expr}, ?) > 0", plain  # "contains" in C: no Python call per row
                elif literal is not None and literal.isascii():
                    # SQLite's lower() folds ASCII only; an ASCII pattern can match nothing else (but for
                    # the Kelvin sign and the long s, which Python's case folding would also match)
                    sql, value = f"instr(lower({expr}), ?) > 0", literal.lower()
                else:
                    sql, value = f"regexp(?, {expr})", ("(?i)" if "i" in options else "") + arg
                check = _document_check(options, literal) if expr != "id" else None
                if check is not None and check != looked_for:  # looked for in the stored JSON first
                    parts.append(f"({check[0]} AND {sql})")
                    params += [check[1], value]
                else:
                    parts.append(sql)
                    params.append(value)
            else:
                raise ValueError(f"unsupported filter operator {op}")
    return " AND ".join(parts) or "1", params


# Documents are read as their UTF-8 bytes, which orjson decodes directly: read as text, SQLite's UTF-8 would
# become a Python string first, only for orjson to encode it back (slow for Japanese text: 2.4 times as long
# for the month's search texts).
_AS_BYTES = "CAST(doc AS BLOB)"
_SMALL_READ = 64  # ids a get_many reads on the event loop's thread (SqliteDb.read_small); more go to a thread


class SqliteCollection:
    """A collection stored as a SQLite table of JSON documents."""

    in_is_pass = False

    def __init__(self, db: SqliteDb, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad collection name {name!r}")
        self.db = db
        self.name = name

    @property
    def table(self) -> str:
        name = physical(self.name)
        if not _NAME.match(name):
            raise ValueError(f"bad collection name {name!r}")
        return f"doc_{name}"

    async def _ensure(self) -> None:
        table = self.table
        if table not in self.db.known_tables:
            await self.db.write(
                lambda c: c.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)"))
            self.db.known_tables.add(table)

    def _index_name(self, fields: tuple[str, ...]) -> str:
        for f in fields:
            _expr(f)  # a bad field name raises
        return f"ix_{self.table}_{'_'.join(f.replace('.', '_') for f in fields)}"

    async def ensure_index(self, *fields: str, unique: bool = False) -> None:
        await self._ensure()
        name = self._index_name(fields)
        cols = ", ".join(_expr(f) for f in fields)
        sql = f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} ON {self.table} ({cols})"
        await self.db.write(lambda c: c.execute(sql))

    @staticmethod
    def _dump(doc: dict[str, Any]) -> str:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()

    async def insert(self, doc: dict[str, Any]) -> None:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"INSERT INTO {self.table} (id, doc) VALUES (?, ?)", (str(doc["_id"]), self._dump(doc)))
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from exc

        await self.db.write(run)

    async def insert_many(self, docs: list[dict[str, Any]]) -> int:
        await self._ensure()
        rows = [(str(d["_id"]), self._dump(d)) for d in docs]

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(f"INSERT OR IGNORE INTO {self.table} (id, doc) VALUES (?, ?)", rows)
            return conn.total_changes - before

        return await self.db.write(run)

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        await self._ensure()
        row = await self.db.read_small(
            lambda c: c.execute(f"SELECT {_AS_BYTES} FROM {self.table} WHERE id = ?", (str(doc_id),)).fetchone()
        )
        return orjson.loads(row[0]) if row else None

    async def get_many(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        await self._ensure()
        ids = [str(i) for i in dict.fromkeys(doc_ids)]

        def run(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows: list[tuple[str, bytes]] = []
            for at in range(0, len(ids), 500):
                part = ids[at:at + 500]
                marks = ",".join("?" * len(part))
                rows += conn.execute(f"SELECT id, {_AS_BYTES} FROM {self.table} WHERE id IN ({marks})",
                                     part).fetchall()
            return rows

        if not ids:
            return {}
        rows = await (self.db.read_small(run) if len(ids) <= _SMALL_READ else self.db.read(run))
        return {i: orjson.loads(d) for i, d in rows}

    async def find(
        self, filter: Filter | None = None, sort: Sort | None = None, skip: int = 0, limit: int = 0,
        without: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        await self._ensure()
        where, params = compile_filter(filter)
        for field in without:
            if field == "_id" or not _NAME.match(field):
                raise ValueError(f"cannot leave out {field!r}")
        # SQLite drops the fields while reading: far less JSON for Python to decode than the whole document
        doc = f"json_remove(doc, {', '.join(repr('$.' + f) for f in without)})" if without else "doc"
        sql = f"SELECT CAST({doc} AS BLOB) FROM {self.table} WHERE {where}"
        if sort:
            sql += " ORDER BY " + ", ".join(f"{_expr(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort)
        if limit or skip:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, limit if limit else -1, skip]
        rows = await self.db.read(lambda c: c.execute(sql, params).fetchall())
        return [orjson.loads(r[0]) for r in rows]

    async def count(self, filter: Filter | None = None) -> int:
        await self._ensure()
        where, params = compile_filter(filter)
        row = await self.db.read(lambda c: c.execute(f"SELECT COUNT(*) FROM {self.table} WHERE {where}", params).fetchone())
        return int(row[0])

    async def update(self, filter: Filter, update: dict[str, Any], upsert: bool = False) -> bool:
        await self._ensure()
        where, params = compile_filter(filter)

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(f"SELECT id, doc FROM {self.table} WHERE {where} LIMIT 1", params).fetchone()
            try:
                if row:
                    doc = apply_update(orjson.loads(row[1]), update, inserting=False)
                    conn.execute(f"UPDATE {self.table} SET doc = ? WHERE id = ?", (self._dump(doc), row[0]))
                    return True
                if not upsert:
                    return False
                base: dict[str, Any] = {}
                for path, value in equality_fields(filter).items():
                    parent, key = _walk(base, path)
                    parent[key] = value
                doc = apply_update(base, update, inserting=True)
                if "_id" not in doc:
                    raise ValueError("upsert needs an _id in the filter or the update")
                conn.execute(f"INSERT INTO {self.table} (id, doc) VALUES (?, ?)", (str(doc["_id"]), self._dump(doc)))
                return True
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from exc

        return await self.db.write(run)

    async def replace(self, doc: dict[str, Any]) -> None:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO {self.table} (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                    (str(doc["_id"]), self._dump(doc)),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from exc

        await self.db.write(run)

    async def replace_many(self, docs: list[dict[str, Any]]) -> None:
        if not docs:
            return
        await self._ensure()
        rows = [(str(d["_id"]), self._dump(d)) for d in docs]

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.executemany(
                    f"INSERT INTO {self.table} (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from exc

        await self.db.write(run)

    async def delete(self, filter: Filter) -> int:
        await self._ensure()
        where, params = compile_filter(filter)
        return await self.db.write(lambda c: c.execute(f"DELETE FROM {self.table} WHERE {where}", params).rowcount)

    async def drop(self) -> None:
        table = self.table
        await self.db.write(lambda c: c.execute(f"DROP TABLE IF EXISTS {table}"))
        self.db.known_tables.discard(table)

    async def drop_index(self, *fields: str) -> None:
        sql = f"DROP INDEX IF EXISTS {self._index_name(fields)}"
        await self.db.write(lambda c: c.execute(sql))

    async def swap_in(self, shadow: str) -> None:
        if not _NAME.match(shadow):
            raise ValueError(f"bad collection name {shadow!r}")
        table, source = self.table, f"doc_{shadow}"

        def run(conn: sqlite3.Connection) -> None:
            indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                   "AND sql IS NOT NULL", (source,)).fetchall()
            conn.execute(f"CREATE TABLE IF NOT EXISTS {source} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"ALTER TABLE {source} RENAME TO {table}")
            # index names carry the table name: rename them too, so the live setup finds its own
            for name, sql in indexes:
                conn.execute(f"DROP INDEX {name}")
                conn.execute(sql.replace(name, name.replace(source, table, 1), 1)
                             .replace(f"ON {source} ", f"ON {table} ").replace(f"ON {source}(", f"ON {table}("))

        await self.db.write(run)
        self.db.known_tables.discard(source)
        self.db.known_tables.add(table)


class SqliteDocStore:
    """The documents of one service in its own SQLite file."""

    def __init__(self, db: SqliteDb) -> None:
        self.db = db
        self._collections: dict[str, SqliteCollection] = {}

    def collection(self, name: str) -> SqliteCollection:
        if name not in self._collections:
            self._collections[name] = SqliteCollection(self.db, name)
        return self._collections[name]
