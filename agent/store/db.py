"""The one database interface of the paper-broker ledger, the kill switch, the LLM answer cache and the bar cache.

SQLite (a file, WAL mode) by default; Postgres when DATABASE_URL is ``postgresql://...``. The SQL
the callers write is the common subset of both (``?`` placeholders, ``ON CONFLICT``, no scalar
``MAX``); the Postgres side only swaps the placeholders. ``write()`` is a transaction that holds
the database's write lock, as SQLite's ``BEGIN IMMEDIATE`` does (a transaction-scoped advisory
lock on Postgres), so two processes never interleave a read-check-write.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pydantic import SecretStr

from agent.errors import ConfigError
from agent.store.checks import check_sqlite_file, storage_error


def is_postgres(target: str | Path | SecretStr | None) -> bool:
    value = target.get_secret_value() if isinstance(target, SecretStr) else str(target or "")
    return value.startswith(("postgresql://", "postgres://"))


class Database:
    dialect = "sqlite"

    def __init__(self, path: Path, scratch: bool = False, key: str = "DATABASE_PATH"):
        """``scratch``: a throwaway file (a backtest's ledger): commits skip the fsync that makes a live
        ledger survive a power cut, which a file deleted after the run does not need. ``key``: the setting a
        file SQLite cannot use is blamed on (a ConfigError at start-up, never a traceback)."""
        self.path = Path(path)
        self._lock = threading.RLock()
        check_sqlite_file(self.path, key)
        self._conn = None
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            if scratch:
                self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a damaged file fails here
        except sqlite3.Error as exc:
            if self._conn is not None:
                self._conn.close()
            raise storage_error(key, self.path, exc) from None

    def execute(self, sql: str, params: tuple | list | dict = ()) -> Any:
        with self._lock:
            return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple] | list[list]) -> None:
        """One statement over many parameter rows (a bulk insert); inside ``write()`` they commit together."""
        with self._lock:
            self._conn.executemany(sql, rows)

    def script(self, sql: str) -> None:
        with self._lock:
            self._conn.executescript(sql)

    def _begin(self, lock_name: str) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def write(self, lock_name: str = "ledger") -> Iterator["Database"]:
        """A transaction holding the write lock: committed on exit, rolled back on an exception."""
        with self._lock:
            try:
                self._begin(lock_name)
                yield self
            except BaseException:
                self._rollback()
                raise
            self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing was begun, or the connection is gone: nothing to undo
            pass

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.RLock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise ConfigError(f"DATABASE_URL: cannot connect to Postgres at {postgres_server(self.url)}: "
                              f"{_without_password(str(exc), self.url)}. Start that server, or leave DATABASE_URL "
                              "empty to keep the ledger in SQLite at DATABASE_PATH") from None

    def execute(self, sql: str, params: tuple | list | dict = ()) -> Any:
        from psycopg import pq

        with self._lock:
            if self._conn.closed and self._conn.info.transaction_status != pq.TransactionStatus.INTRANS:
                self._conn = self._connect()  # the server restarted or dropped us: reconnect between transactions
            return self._conn.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: list[tuple] | list[list]) -> None:
        with self._lock, self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    def script(self, sql: str) -> None:
        with self._lock:
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    self._conn.execute(statement)

    def _begin(self, lock_name: str) -> None:
        if self._conn.closed:
            self._conn = self._connect()
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(lock_name.encode()),))


def check_schema(db: Database, schema: str, where: str) -> None:
    """Tables made by an older version lack columns this one writes: say so at start-up instead of failing
    on the first trade. (There are no migrations yet; the fix is a fresh store.)"""
    for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\);", schema, flags=re.S):
        wanted = [col.split()[0] for col in re.split(r",\s*(?![^()]*\))", body) if col.split()]
        have = {d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description}
        missing = [c for c in wanted if c not in have]
        if missing:
            raise ConfigError(f"{where}: table {table} was made by an older version and lacks {', '.join(missing)}. "
                              "Back it up (make backup), then move the old database away to start a fresh ledger")


def next_seq(db: Database, table: str) -> int:
    """Rows keep their insertion order in ``seq`` (rowid is SQLite's alone); call inside ``db.write()``."""
    return int(db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM {table}").fetchone()["n"])


def postgres_server(url: str) -> str:
    """``host:port/dbname`` of a Postgres URL, without the user or the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - a malformed URL: psycopg says so when connecting
        return "(an unreadable URL)"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def _without_password(text: str, url: str) -> str:
    """psycopg's message on one line, the URL's password masked should it ever appear."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:  # noqa: BLE001
        password = None
    text = " ".join(text.split())
    return re.sub(rf"(?<![\w]){re.escape(password)}(?![\w])", "***", text) if password else text


def open_database(target: str | Path | SecretStr | Database, key: str = "DATABASE_PATH") -> Database:
    """SQLite at a path, or Postgres for a ``postgresql://`` URL (a Database passes through as it is).
    ``key`` names the SQLite path's setting in a start-up error."""
    if isinstance(target, Database):
        return target
    if is_postgres(target):
        url = target.get_secret_value() if isinstance(target, SecretStr) else str(target)
        return PostgresDatabase(url)
    return Database(Path(target), key=key)
