"""A real PostgreSQL server for the tests (Debian's postgresql package: .ci/install-system-deps).

``Postgres.start()`` runs initdb into a fresh folder and pg_ctl on a Unix socket only (no TCP port), as
the ``postgres`` user when the tests run as root (initdb refuses root; CI runs as root). Each test makes
its own database (``new_database``) with two roles: the ingest owner and a reader that may only SELECT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _newest_bin() -> Path:
    """Debian installs each major version under /usr/lib/postgresql/N/bin (15 on bookworm)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _newest_bin()


def available() -> bool:
    return (PG_BIN / "initdb").exists()


class Postgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data, self.sock = self.dir / "data", self.dir / "sock"
        self.sock.mkdir()
        self.user = "postgres" if os.geteuid() == 0 else ""
        self.port = 5433 + os.getpid() % 500
        self.dbs = 0

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> Postgres:
        if self.user:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, self.user)
            shutil.chown(self.sock, self.user)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "edge", "-E", "UTF8",
                  "--no-sync")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o",
                  f"-k {self.sock} -p {self.port} -c listen_addresses='' -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")
        return self

    def url(self, db: str = "postgres", user: str = "edge") -> str:
        return f"postgresql://{user}@/{db}?host={self.sock}&port={self.port}"

    def new_database(self) -> tuple[str, str]:
        """(ingest url, reader url) of a fresh database; the reader role may log in and nothing more."""
        import psycopg

        self.dbs += 1
        name = f"oversight{self.dbs}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
            if self.dbs == 1:
                conn.execute("CREATE ROLE reader LOGIN")
        return self.url(name), self.url(name, "reader")

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
