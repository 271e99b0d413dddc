"""The workspace database itself: one SQLite file (WAL mode), one connection per thread, short `BEGIN IMMEDIATE`
write transactions retried while another process holds the lock, and the append-only migrations."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from datatune_core.config import default_home
from datatune_core.errors import StoreError
from datatune_core.store import migrations
from datatune_core.store.records import _now

_D = TypeVar("_D", bound="Database")


class Database:
    """Thread-safe handle to the workspace database; one connection per thread. `Store` adds the tables' methods."""

    def __init__(self, db_path: Path | str, *, busy_timeout_s: float = 60.0):
        self.db_path = Path(db_path)
        self.home = self.db_path.parent
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._check_home()
        self.migrate()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls: type[_D], home: Path | str | None = None) -> _D:
        home = Path(home).expanduser() if home else default_home()
        return cls(home / "workspace.db")

    def _check_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"Cannot create the workspace folder {self.home}: {e.strerror}. "
                "Set DATATUNE_HOME to a writable folder."
            ) from e
        probe = self.home / ".write-test"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise StoreError(
                f"The workspace folder {self.home} is not writable ({e.strerror}). "
                "Set DATATUNE_HOME to a writable folder or fix its permissions."
            ) from e
        # No open()/close() of workspace.db here: closing any descriptor of the file drops every POSIX lock this
        # process's SQLite connections hold on it, after which another process may delete the WAL under them
        # ("database disk image is malformed"). A file that is not SQLite is reported by `conn` instead.

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None,
                                    check_same_thread=False)
                c.row_factory = sqlite3.Row
                c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=NORMAL")
                c.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise StoreError(
                    f"Cannot open the workspace database {self.db_path}: {e} (corrupt or not a SQLite database). "
                    "Move it aside (e.g. rename it to workspace.db.bad) to start a fresh workspace, "
                    "or set DATATUNE_HOME to another folder."
                ) from e
            self._local.conn = c
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE), retried while another process holds the lock."""
        c = self.conn
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                c.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise StoreError(
                        f"The workspace database {self.db_path} is locked by another process ({e}). "
                        "Close other DataTune processes or wait and retry."
                    ) from e
                time.sleep(0.05)
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        else:
            c.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    # --------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply pending migrations in order; returns the names applied."""
        try:
            c = self.conn
            c.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"The workspace database {self.db_path} is unreadable ({e}). "
                "Move it aside to start a fresh workspace, or set DATATUNE_HOME to another folder."
            ) from e
        applied = []
        for name, sql in migrations.MIGRATIONS:
            if self.query_one("SELECT 1 FROM migrations WHERE name=?", (name,)):
                continue
            with self.tx() as tx:
                if tx.execute("SELECT 1 FROM migrations WHERE name=?", (name,)).fetchone():
                    continue
                for stmt in _split_sql(sql):
                    tx.execute(stmt)
                tx.execute("INSERT INTO migrations(name, applied_at) VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM migrations ORDER BY name")]


def _split_sql(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
