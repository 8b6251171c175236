"""SQLite in WAL mode, the way the box's outbox and the console's store both use it.

One connection shared by threads (callers hold their own lock), autocommit off by hand: explicit
``BEGIN IMMEDIATE`` transactions, ``synchronous=FULL`` so that an acknowledged write survives power loss,
and the file readable by its owner only (it holds alert crops).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def connect(path: str | Path, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None)
    Path(path).chmod(0o600)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
