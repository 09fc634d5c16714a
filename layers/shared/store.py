"""The business logic every layer shares: a small catalogue of items in SQLite.

Theory of operation
-------------------
Each process opens one in-memory SQLite database, creates the ``items`` table and
seeds it with 100 deterministic items, so ``/items/1`` .. ``/items/100`` exist on a
fresh start of any layer on any server.  Every layer calls this module and nothing
else for its data: whatever a benchmark shows between two layers is the framework,
never the storage.

One connection, one lock.  The WSGI servers call the store from many threads (so does
a2wsgi's pool when a WSGI layer is bridged onto an ASGI server), and the ASGI layers from
the event loop's thread -- not FastAPI's thread pool: every handler and dependency there
is ``async def``.  So the connection is opened with ``check_same_thread=False`` and every
statement runs under a ``threading.Lock``.  An in-memory database answers in
microseconds, so holding the lock costs less than a second connection would (a
shared-cache in-memory database would give each thread its own connection, but shared
cache uses table locks that fail at once with ``SQLITE_LOCKED`` under concurrent writes
instead of waiting).

What it deliberately doesn't do: persistence across restarts, and sharing between
worker processes.  With ``--workers 4`` each worker has its own 100 items, and an
item created on one worker is not visible on another -- the same as any per-process
cache, and documented in CONTRACT.md.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

SEED_COUNT = 100

_SCHEMA = """
CREATE TABLE items (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name  TEXT    NOT NULL,
    price REAL    NOT NULL,
    tags  TEXT    NOT NULL DEFAULT '[]'
)
"""

_TAG_WORDS = ("red", "green", "blue", "small", "large", "new", "sale")


def seed_item(i: int) -> tuple[str, float, list[str]]:
    """The i-th seeded item (1-based): deterministic, so every process agrees."""
    tags = [_TAG_WORDS[i % len(_TAG_WORDS)], _TAG_WORDS[(i * 3) % len(_TAG_WORDS)]]
    return f"Item {i}", round(1 + i * 1.25, 2), sorted(set(tags))


def _row_to_item(row: tuple[int, str, float, str]) -> dict[str, Any]:
    item_id, name, price, tags = row
    return {"id": item_id, "name": name, "price": price, "tags": json.loads(tags)}


class Store:
    """The item catalogue of one process.  Open it at startup, close it at shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(":memory:", check_same_thread=False)
        with self._lock:
            self._conn.execute(_SCHEMA)
            self._conn.executemany(
                "INSERT INTO items (name, price, tags) VALUES (?, ?, ?)",
                [(n, p, json.dumps(t)) for n, p, t in map(seed_item, range(1, SEED_COUNT + 1))],
            )
            self._conn.commit()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed (was the app's shutdown already run?)")
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn is None

    def get(self, item_id: int) -> dict[str, Any] | None:
        """One item by id, or None.  Ids outside SQLite's 64-bit range simply do not exist."""
        if not -(2**63) <= item_id < 2**63:
            return None
        with self._lock:
            row = self.conn.execute("SELECT id, name, price, tags FROM items WHERE id = ?", (item_id,)).fetchone()
        return _row_to_item(row) if row else None

    def list(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of items ordered by id, and the total count."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, name, price, tags FROM items ORDER BY id LIMIT ? OFFSET ?",
                (limit, min(offset, 2**63 - 1)),
            ).fetchall()
            (total,) = self.conn.execute("SELECT COUNT(*) FROM items").fetchone()
        return [_row_to_item(r) for r in rows], total

    def create(self, name: str, price: float, tags: Sequence[str]) -> dict[str, Any]:
        """Insert an already validated item and return it as stored."""
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO items (name, price, tags) VALUES (?, ?, ?)",
                (name, float(price), json.dumps(list(tags))),
            )
            self.conn.commit()
            item_id = cur.lastrowid
        return {"id": item_id, "name": name, "price": float(price), "tags": list(tags)}

    def count(self) -> int:
        with self._lock:
            (total,) = self.conn.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(total)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_store() -> Store:
    """Create and seed this process's store."""
    return Store()
