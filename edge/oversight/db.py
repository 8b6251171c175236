"""The oversight store's database: PostgreSQL (``postgresql://...``) or SQLite (a path), one small API.

SQL is written once with ``?`` placeholders and portable types; for PostgreSQL they become ``%s``.
The schema is versioned (``schema_version``): ``migrate()`` brings an older database up to date in one
transaction; a database newer than this code, or one not yet migrated when opened read-only, is refused
in one sentence. Readers open the database read-only (SQLite ``mode=ro``; PostgreSQL read-only
transactions, and ideally a role that may only SELECT: ``database.reader_role``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

TABLES = """
CREATE TABLE boxes (box_id TEXT PRIMARY KEY, site TEXT NOT NULL, site_kind TEXT NOT NULL,
  curve_public TEXT NOT NULL, registered TEXT NOT NULL);
CREATE TABLE box_keys (box_id TEXT NOT NULL, key_id TEXT NOT NULL, signing_public TEXT NOT NULL,
  source TEXT NOT NULL, PRIMARY KEY (box_id, key_id));
CREATE TABLE branches (box_id TEXT NOT NULL, branch INTEGER NOT NULL, parent INTEGER, base_seq BIGINT NOT NULL,
  base_hash TEXT NOT NULL, last_seq BIGINT NOT NULL, last_hash TEXT NOT NULL, signed_through BIGINT NOT NULL,
  opened TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (box_id, branch));
CREATE TABLE records (box_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL, time TEXT NOT NULL,
  kind TEXT NOT NULL, hash TEXT NOT NULL, line TEXT NOT NULL, via TEXT NOT NULL, received TEXT NOT NULL,
  PRIMARY KEY (box_id, branch, seq));
CREATE TABLE incidents (box_id TEXT NOT NULL, kind TEXT NOT NULL, branch INTEGER NOT NULL, from_seq BIGINT NOT NULL,
  to_seq BIGINT NOT NULL, detected TEXT NOT NULL, detail TEXT NOT NULL,
  PRIMARY KEY (box_id, kind, branch, from_seq));
CREATE TABLE witnesses (box_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL,
  countersigned TEXT NOT NULL, PRIMARY KEY (box_id, branch, seq));
CREATE TABLE lists (box_id TEXT NOT NULL, list_id TEXT NOT NULL, issuer TEXT NOT NULL, issuer_name TEXT NOT NULL,
  deployment TEXT NOT NULL, sequence BIGINT, entries BIGINT NOT NULL, images BIGINT NOT NULL, refs TEXT NOT NULL,
  loaded TEXT NOT NULL, loaded_seq BIGINT NOT NULL, branch INTEGER NOT NULL, ended TEXT, ended_how TEXT,
  ended_seq BIGINT, receipt TEXT, receipt_valid INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (box_id, list_id));
CREATE TABLE refusals (box_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL, time TEXT NOT NULL,
  issuer TEXT NOT NULL, claimed_list_id TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (box_id, branch, seq));
CREATE TABLE alerts (box_id TEXT NOT NULL, alert_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL,
  time TEXT NOT NULL, ref TEXT NOT NULL, list_id TEXT NOT NULL, issuer TEXT NOT NULL, deployment_id TEXT NOT NULL,
  camera_id TEXT NOT NULL, distance DOUBLE PRECISION NOT NULL, PRIMARY KEY (box_id, alert_id));
CREATE TABLE decisions (box_id TEXT NOT NULL, alert_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL,
  time TEXT NOT NULL, decision TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL,
  PRIMARY KEY (box_id, alert_id));
CREATE TABLE deletions (box_id TEXT NOT NULL, alert_id TEXT NOT NULL, branch INTEGER NOT NULL, seq BIGINT NOT NULL,
  time TEXT NOT NULL, PRIMARY KEY (box_id, alert_id));
CREATE TABLE faces (box_id TEXT NOT NULL, deployment_id TEXT NOT NULL, day TEXT NOT NULL, faces BIGINT NOT NULL,
  PRIMARY KEY (box_id, deployment_id, day));
CREATE TABLE deployments (box_id TEXT NOT NULL, deployment_id TEXT NOT NULL, issuer TEXT NOT NULL,
  location TEXT NOT NULL, started TEXT, ended TEXT, PRIMARY KEY (box_id, deployment_id));
CREATE TABLE registers (issuer TEXT NOT NULL, issuer_name TEXT NOT NULL, list_id TEXT NOT NULL,
  box_id TEXT NOT NULL, deployment TEXT NOT NULL, sequence BIGINT, created TEXT NOT NULL, not_after TEXT NOT NULL,
  entries BIGINT NOT NULL, images BIGINT NOT NULL, refs TEXT NOT NULL, box_signing_public TEXT NOT NULL,
  source TEXT NOT NULL, ingested TEXT NOT NULL, PRIMARY KEY (issuer, list_id));
CREATE INDEX alerts_time ON alerts (time);
CREATE INDEX lists_loaded ON lists (loaded);
CREATE INDEX records_kind ON records (box_id, kind)
"""

# version 2: each alert row also holds its decision and its deletion (the fleet report reads one table)
DECIDED = """
ALTER TABLE alerts ADD COLUMN decision TEXT;
ALTER TABLE alerts ADD COLUMN action TEXT;
ALTER TABLE alerts ADD COLUMN decision_seq BIGINT;
ALTER TABLE alerts ADD COLUMN deleted_seq BIGINT;
UPDATE alerts SET decision = (SELECT d.decision FROM decisions d WHERE d.box_id = alerts.box_id AND
  d.alert_id = alerts.alert_id), action = (SELECT CASE WHEN d.decision = 'confirm' THEN d.action ELSE d.reason END
  FROM decisions d WHERE d.box_id = alerts.box_id AND d.alert_id = alerts.alert_id), decision_seq = (SELECT d.seq
  FROM decisions d WHERE d.box_id = alerts.box_id AND d.alert_id = alerts.alert_id), deleted_seq = (SELECT x.seq
  FROM deletions x WHERE x.box_id = alerts.box_id AND x.alert_id = alerts.alert_id)
"""

# version -> the statements that bring the version before it to this one (never edit a released one)
MIGRATIONS: dict[int, list[str]] = {n: [s.strip() for s in sql.split(";") if s.strip()]
                                    for n, sql in ((1, TABLES), (2, DECIDED))}
VERSION = max(MIGRATIONS)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Database:
    """One connection. ``q(sql, args)`` -> rows; ``x(sql, args)``; ``many(sql, rows)``; ``tx()`` a transaction."""

    def __init__(self, url: str, readonly: bool = False):
        self.url, self.readonly = url, readonly
        self.postgres = is_postgres(url)
        self._in_tx = False
        try:
            self._conn: Any = self._connect_pg() if self.postgres else self._connect_sqlite()
        except EdgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver's own error types differ; one sentence either way
            raise EdgeError(f"cannot open the oversight database {self.where}: {str(exc).strip().splitlines()[0]}") \
                from None

    @property
    def where(self) -> str:
        if self.postgres:  # never show a password
            rest = self.url.split("://", 1)[1]
            return "postgresql://" + rest.split("@", 1)[-1]
        return self.url

    def _connect_pg(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        if self.readonly:
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return conn

    def _connect_sqlite(self) -> sqlite3.Connection:
        path = Path(self.url)
        if self.readonly:
            if not path.is_file():
                raise EdgeError(f"the oversight database {path} does not exist: run 'edge oversight migrate'")
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def x(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), tuple(args))

    def q(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return list(self.x(sql, args).fetchall())

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        rows = self.q(sql, args)
        return rows[0] if rows else None

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.postgres:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        else:
            self._conn.executemany(sql, [tuple(r) for r in rows])

    def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """New rows in bulk (PostgreSQL: COPY, several times faster than INSERTs; SQLite: executemany)."""
        if not rows:
            return
        if self.postgres:
            from psycopg import sql

            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                              sql.SQL(", ").join(map(sql.Identifier, columns)))
            with self._conn.cursor() as cur, cur.copy(stmt) as copy:
                for r in rows:
                    copy.write_row(r)
        else:
            marks = ", ".join("?" * len(columns))
            self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @contextlib.contextmanager
    def tx(self) -> Iterator[Database]:
        """One transaction: all of it or none of it (nested calls join the outer one)."""
        if self._in_tx:
            yield self
            return
        self._in_tx = True
        try:
            if self.postgres:
                with self._conn.transaction():
                    yield self
            else:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    # -- schema -------------------------------------------------------------------------------------
    def version(self) -> int:
        if self.postgres:
            found = self.one("SELECT to_regclass('schema_version') IS NOT NULL")
            exists = bool(found and found[0])
        else:
            exists = self.one("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'") is not None
        if not exists:
            return 0
        row = self.one("SELECT version FROM schema_version")
        return int(row[0]) if row else 0

    def check_version(self) -> None:
        """Refuse, in one sentence, a database this code cannot read as it is."""
        v = self.version()
        if v > VERSION:
            raise EdgeError(f"the oversight database {self.where} is at schema version {v}, newer than this "
                            f"service knows ({VERSION}): update the service")
        if v < VERSION:
            raise EdgeError(f"the oversight database {self.where} is at schema version {v}, not {VERSION}: "
                            "run 'edge oversight migrate'")

    def migrate(self, reader_role: str = "", upto: int = VERSION) -> list[int]:
        """Apply every migration above the database's version (up to ``upto``), in one transaction; the
        versions applied."""
        if self.readonly:
            raise EdgeError("a read-only connection cannot migrate the database")
        done = []
        with self.tx():
            v = self.version()
            if v > VERSION:
                self.check_version()
            if v == 0:
                self.x("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                self.x("INSERT INTO schema_version (version) VALUES (0)")
            for n in range(v + 1, upto + 1):
                for stmt in MIGRATIONS[n]:
                    self.x(stmt)
                self.x("UPDATE schema_version SET version = ?", (n,))
                done.append(n)
            if reader_role and self.postgres:
                from psycopg import sql

                self._conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(reader_role)))
        return done

    def size_bytes(self) -> int:
        """What the database takes on disk (bench.fleet)."""
        if self.postgres:
            row = self.one("SELECT pg_database_size(current_database())")
            return int(row[0]) if row else 0
        path = Path(self.url)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def open_db(url: str, readonly: bool = False, migrate: bool = False, reader_role: str = "") -> Database:
    """Open and check the schema (or bring it up to date when ``migrate``); EdgeError in one sentence."""
    db = Database(url, readonly)
    try:
        if migrate:
            db.migrate(reader_role)
        db.check_version()
    except EdgeError:
        db.close()
        raise
    except Exception as exc:  # noqa: BLE001
        db.close()
        raise EdgeError(f"the oversight database {db.where} cannot be used: {str(exc).strip().splitlines()[0]}") \
            from None
    return db
