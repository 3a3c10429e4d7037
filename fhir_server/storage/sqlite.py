"""The embedded SQLite store: the zero-set-up default.

One database file in WAL mode with ``synchronous=FULL``, so a commit is on disk before the client
hears of it and a killed process loses nothing it acknowledged. Per resource type there is a table
of current versions (``res_<Type>``, served as stored JSON) and a table of search-index entries
(``idx_<Type>``, see :mod:`fhir_server.search.index`); one ``history`` table keeps every version, and
``messages`` the received HL7 v2 messages with their ACKs.
Writes go through one connection under the store lock; readers use one connection per thread, except
inside :meth:`SQLiteStore.transaction`, where the writing thread reads its own uncommitted writes.

Searches compile the filter tree to SQL with ``?`` placeholders only. The most selective clause
drives the query (``rid IN (…)`` over the index); the others are ``EXISTS`` probes on ``(rid, p)``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fhir_server.definitions import SERVED_TYPES
from fhir_server.search.filters import (
    AllConds,
    AnyConds,
    Cond,
    CondExpr,
    Exists,
    Filter,
    Match,
    Not,
    Nothing,
    Or,
    SortKey,
)
from fhir_server.search.filters import And as AndFilter
from fhir_server.storage.base import LoggedMessage, Page, Store, StoredResource, VersionConflict, Write

log = logging.getLogger(__name__)

_SCHEMA_TYPE = """
CREATE TABLE IF NOT EXISTS "res_{t}" (
    rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, version INTEGER NOT NULL,
    last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, body BLOB);
CREATE INDEX IF NOT EXISTS "res_{t}_lu" ON "res_{t}" (last_updated);
CREATE TABLE IF NOT EXISTS "idx_{t}" (rid INTEGER NOT NULL, p TEXT NOT NULL, s TEXT, k TEXT, t TEXT, lo, hi);
CREATE INDEX IF NOT EXISTS "idx_{t}_pk" ON "idx_{t}" (p, k, s);
CREATE INDEX IF NOT EXISTS "idx_{t}_rid" ON "idx_{t}" (rid, p);
CREATE INDEX IF NOT EXISTS "idx_{t}_lo" ON "idx_{t}" (p, lo) WHERE lo IS NOT NULL;
CREATE INDEX IF NOT EXISTS "idx_{t}_t" ON "idx_{t}" (p, t) WHERE t IS NOT NULL;
"""
# Schema versions (PRAGMA user_version): 1 made the (p, lo) and (p, t) indexes partial. Most entries
# (tokens, references' keys) have neither, and every index row costs a page write per commit; a
# comparison on lo or t implies the column is not NULL, so the same searches use them.
_SCHEMA_VERSION = 1
_MIGRATIONS = {1: 'DROP INDEX IF EXISTS "idx_{t}_lo"; DROP INDEX IF EXISTS "idx_{t}_t";'}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
    last_updated TEXT NOT NULL, method TEXT NOT NULL, deleted INTEGER NOT NULL, body BLOB,
    UNIQUE (type, id, version));
CREATE INDEX IF NOT EXISTS history_lu ON history (last_updated);
CREATE INDEX IF NOT EXISTS history_type_lu ON history (type, last_updated);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, received TEXT NOT NULL,
    sha256 TEXT NOT NULL, outcome TEXT NOT NULL, message BLOB NOT NULL, reply BLOB);
CREATE INDEX IF NOT EXISTS messages_key ON messages (kind, key, seq);
"""
_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COLUMNS = {"s", "k", "t", "lo", "hi"}
_MAX_CHAR = "\U0010ffff"


def _cond_sql(cond: CondExpr, args: list) -> str:
    if isinstance(cond, AllConds | AnyConds):
        glue = " AND " if isinstance(cond, AllConds) else " OR "
        return "(" + glue.join(_cond_sql(c, args) for c in cond.parts) + ")"
    assert cond.column in _COLUMNS
    col = f"i.{cond.column}"
    if cond.op == "null":
        return f"{col} IS NULL"
    if cond.op == "prefix":
        args.extend([cond.value, f"{cond.value}{_MAX_CHAR}"])
        return f"({col} >= ? AND {col} < ?)"
    if cond.op == "contains":
        args.append(cond.value)
        return f"instr({col}, ?) > 0"
    if cond.op == "in":
        values = list(cond.value)  # type: ignore[call-overload]
        if not values:
            return "0"
        args.extend(values)
        return f"{col} IN ({','.join('?' * len(values))})"
    args.append(cond.value)
    return f"{col} {_OPS[cond.op]} ?"


def _match_sql(type_: str, match: Match, args: list, *, driving: bool) -> str:
    args.append(match.p)
    where = "i.p = ?"
    if match.cond is not None:
        where += " AND " + _cond_sql(match.cond, args)
    if driving:
        return f'r.rid IN (SELECT i.rid FROM "idx_{type_}" i WHERE {where})'
    return f'EXISTS (SELECT 1 FROM "idx_{type_}" i WHERE i.rid = r.rid AND {where})'


def _filter_sql(type_: str, f: Filter, args: list) -> str:
    if isinstance(f, Match):
        return _match_sql(type_, f, args, driving=False)
    if isinstance(f, Exists):
        args.append(f.p)
        return f'EXISTS (SELECT 1 FROM "idx_{type_}" i WHERE i.rid = r.rid AND i.p = ?)'
    if isinstance(f, Not):
        return f"NOT ({_filter_sql(type_, f.part, args)})"
    if isinstance(f, Or):
        return "(" + " OR ".join(_filter_sql(type_, p, args) for p in f.parts) + ")"
    if isinstance(f, AndFilter):
        return "(" + " AND ".join(_filter_sql(type_, p, args) for p in f.parts) + ")"
    if isinstance(f, Nothing):
        return "0"
    raise TypeError(f)


def _selectivity(match: Match) -> int:
    """Rank for choosing the driving clause: lower is expected to match fewer rows."""
    cond = match.cond
    conds = [cond] if isinstance(cond, Cond) else list(getattr(cond, "parts", []))
    if isinstance(cond, AnyConds):
        return 5
    ops = {(c.column, c.op) for c in conds if isinstance(c, Cond)}
    if match.p in ("_id", "identifier", "patient", "subject") and ({("k", "eq"), ("k", "in")} & ops):
        return 0
    if {("k", "eq"), ("k", "in")} & ops:
        return 1
    if ("k", "prefix") in ops or ("t", "eq") in ops:
        return 2
    return 4


def compile_where(type_: str, f: Filter | None) -> tuple[str, list]:
    """SQL condition over ``res_<type_> r`` and its arguments."""
    args: list = []
    parts = ["r.deleted = 0"]
    if f is None:
        return parts[0], args
    top = list(f.parts) if isinstance(f, AndFilter) else [f]
    matches = [p for p in top if isinstance(p, Match)]
    driver = min(matches, key=_selectivity) if matches else None
    if driver is not None and _selectivity(driver) < 5:
        parts.append(_match_sql(type_, driver, args, driving=True))
        top.remove(driver)
    for part in top:
        parts.append(_filter_sql(type_, part, args))
    return " AND ".join(parts), args


def compile_order(type_: str, sort: tuple[SortKey, ...], args: list) -> str:
    """ORDER BY clause: FHIR sorts multi-valued parameters by their lowest (asc) / highest (desc) value."""
    terms = []
    for key in sort:
        direction = "DESC" if key.descending else "ASC"
        if key.p == "_id":
            terms.append(f"r.id {direction}")
            continue
        if key.p == "_lastUpdated":
            terms.append(f"r.last_updated {direction}")
            continue
        numeric = key.param_type in ("date", "number", "quantity")
        if numeric:
            column, missing = ("MAX(i.hi)", "-9e999") if key.descending else ("MIN(i.lo)", "9e999")
        else:
            column, missing = ("MAX(i.k)", "''") if key.descending else ("MIN(i.k)", "char(1114111)")
        # resources without a value sort last either way
        terms.append(f'COALESCE((SELECT {column} FROM "idx_{type_}" i WHERE i.rid = r.rid AND i.p = ?), '
                     f"{missing}) {direction}")
        args.append(key.p)
    terms.append("r.rid")
    return " ORDER BY " + ", ".join(terms)


class SQLiteStore(Store):
    """SQLite implementation of :class:`~fhir_server.storage.base.Store`."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer = self._connect()
        self._depth = 0  # nesting of transaction() on the writer connection
        self._owner: int | None = None  # the thread inside transaction(): its reads see its writes
        with self.lock:
            self._migrate()

    def _migrate(self) -> None:
        """Create the tables, or bring an older database's schema up to date, in one transaction."""
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema version {version}, made by a newer DACS than this one "
                               f"(which knows up to {_SCHEMA_VERSION})")
        existing = self._writer.execute("SELECT count(*) FROM sqlite_master WHERE name = 'history'").fetchone()[0]
        if existing and version < _SCHEMA_VERSION:
            log.warning("upgrading %s from schema version %d to %d (index rebuilds: a few minutes for millions "
                        "of resources)", self.path, version, _SCHEMA_VERSION)
        steps = "".join(_MIGRATIONS[v].format(t=t) for v in range(version + 1, _SCHEMA_VERSION + 1)
                        for t in SERVED_TYPES)
        schema = _SCHEMA + "".join(_SCHEMA_TYPE.format(t=t) for t in SERVED_TYPES)
        self._writer.executescript(f"BEGIN IMMEDIATE; {steps}{schema}PRAGMA user_version = {_SCHEMA_VERSION}; COMMIT;")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        # Checkpoint (copy the WAL into the database) every 10,000 pages (40 MB) instead of 1,000: index
        # pages that several commits touch are copied once, and commits pay for a checkpoint 10× less often.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        if self._owner == threading.get_ident():
            return self._writer  # inside transaction(): read what it wrote so far
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def read(self, type_: str, id_: str) -> StoredResource | None:
        self.check_type(type_)
        row = self._reader.execute(
            f'SELECT id, version, last_updated, deleted, body FROM "res_{type_}" WHERE id = ?', (id_,)
        ).fetchone()
        if row is None:
            return None
        return StoredResource(type_, row[0], row[1], row[2], bool(row[3]), row[4])

    def vread(self, type_: str, id_: str, version: int) -> StoredResource | None:
        row = self._reader.execute(
            "SELECT id, version, last_updated, deleted, body, method FROM history "
            "WHERE type = ? AND id = ? AND version = ?", (type_, id_, version)).fetchone()
        if row is None:
            return None
        return StoredResource(type_, row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    def history(self, type_: str | None, id_: str | None, *, since: str | None, count: int,
                offset: int) -> Page:
        where, args = [], []
        if type_ is not None:
            where.append("type = ?")
            args.append(type_)
        if id_ is not None:
            where.append("id = ?")
            args.append(id_)
        if since is not None:
            where.append("last_updated >= ?")
            args.append(since)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self._reader.execute(f"SELECT COUNT(*) FROM history{clause}", args).fetchone()[0]
        rows = self._reader.execute(
            f"SELECT type, id, version, last_updated, deleted, body, method FROM history{clause} "
            "ORDER BY last_updated DESC, seq DESC LIMIT ? OFFSET ?", [*args, count, offset]).fetchall()
        return Page([StoredResource(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows], total)

    def search(self, type_: str, filter_: Filter | None, sort: tuple[SortKey, ...], *, count: int,
               offset: int, total: bool) -> Page:
        self.check_type(type_)
        where, args = compile_where(type_, filter_)
        conn = self._reader
        rows: list = []
        matched = None
        if count > 0:
            order_args: list = []
            order = compile_order(type_, sort, order_args)
            # the total comes with the page (a window count over the rows the sort sees anyway)
            counted = ", COUNT(*) OVER ()" if total else ""
            rows = conn.execute(
                f'SELECT r.id, r.version, r.last_updated, r.body{counted} FROM "res_{type_}" r WHERE {where}{order} '
                "LIMIT ? OFFSET ?", [*args, *order_args, count, offset]).fetchall()
            if total and rows:
                matched = rows[0][4]
        if total and matched is None:
            matched = conn.execute(f'SELECT COUNT(*) FROM "res_{type_}" r WHERE {where}', args).fetchone()[0]
        return Page([StoredResource(type_, r[0], r[1], r[2], False, r[3]) for r in rows], matched)

    def read_many(self, type_: str, ids: list[str]) -> list[StoredResource]:
        self.check_type(type_)
        found: list[StoredResource] = []
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            rows = self._reader.execute(
                f'SELECT id, version, last_updated, body FROM "res_{type_}" WHERE deleted = 0 AND id IN '
                f"({','.join('?' * len(chunk))})", chunk).fetchall()
            found.extend(StoredResource(type_, r[0], r[1], r[2], False, r[3]) for r in rows)
        return found

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            conn = self._writer
            depth = self._depth
            savepoint = f"s{depth}"
            conn.execute(f"SAVEPOINT {savepoint}" if depth else "BEGIN IMMEDIATE")
            self._depth, self._owner = depth + 1, threading.get_ident()
            try:
                yield
                conn.execute(f"RELEASE {savepoint}" if depth else "COMMIT")
            except BaseException:
                if depth:
                    conn.execute(f"ROLLBACK TO {savepoint}")
                    conn.execute(f"RELEASE {savepoint}")
                elif conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = depth
                if not depth:
                    self._owner = None

    def commit(self, writes: list[Write]) -> None:
        with self.transaction():
            for w in writes:
                self._apply(self._writer, w)

    def log_message(self, message: LoggedMessage) -> None:
        with self.transaction():
            self._writer.execute(
                "INSERT INTO messages (kind, key, received, sha256, outcome, message, reply) VALUES (?,?,?,?,?,?,?)",
                (message.kind, message.key, message.received, message.sha256, message.outcome, message.message,
                 message.reply))

    def last_message(self, kind: str, key: str) -> LoggedMessage | None:
        row = self._reader.execute(
            "SELECT received, sha256, outcome, message, reply FROM messages WHERE kind = ? AND key = ? "
            "ORDER BY seq DESC LIMIT 1", (kind, key)).fetchone()
        return None if row is None else LoggedMessage(kind, key, *row)

    @staticmethod
    def _apply(conn: sqlite3.Connection, w: Write) -> None:
        SQLiteStore.check_type(w.type)
        row = conn.execute(f'SELECT rid, version FROM "res_{w.type}" WHERE id = ?', (w.id,)).fetchone()
        current = None if row is None else row[1]
        if current != w.expected_version:
            raise VersionConflict(
                f"{w.type}/{w.id} is at version {current}, expected {w.expected_version}: changed concurrently")
        deleted = 1 if w.deleted else 0
        if row is None:
            rid = conn.execute(
                f'INSERT INTO "res_{w.type}" (id, version, last_updated, deleted, body) VALUES (?,?,?,?,?)',
                (w.id, w.version, w.last_updated, deleted, w.body)).lastrowid
        else:
            rid = row[0]
            conn.execute(f'UPDATE "res_{w.type}" SET version=?, last_updated=?, deleted=?, body=? WHERE rid=?',
                         (w.version, w.last_updated, deleted, w.body, rid))
            conn.execute(f'DELETE FROM "idx_{w.type}" WHERE rid = ?', (rid,))
        if not w.deleted and w.entries:
            conn.executemany(f'INSERT INTO "idx_{w.type}" (rid, p, s, k, t, lo, hi) VALUES (?,?,?,?,?,?,?)',
                             [(rid, *e) for e in w.entries])
        conn.execute("INSERT INTO history (type, id, version, last_updated, method, deleted, body) "
                     "VALUES (?,?,?,?,?,?,?)", (w.type, w.id, w.version, w.last_updated, w.method, deleted, w.body))

    def close(self) -> None:
        # keep the query planner's statistics current (https://sqlite.org/pragma.html#pragma_optimize)
        self._writer.execute("PRAGMA optimize")
        self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
