"""Append-only schema migrations: `migrations/NNN_name.sql`, applied in order, each once.

The applied versions are recorded in `schema_migrations`. A file, once released, is never edited:
a change is a new file. Each migration runs in its own transaction.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, Path]]:
    out = []
    for p in sorted(MIGRATIONS.glob("*.sql")):
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), m.group(2), p))
    return out


def migrate(con: duckdb.DuckDBPyConnection, lake: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {lake}.schema_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ)"
    )
    done = {r[0] for r in con.execute(f"SELECT version FROM {lake}.schema_migrations").fetchall()}
    applied = []
    for version, name, path in available():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text(encoding="utf-8"))
            con.execute(
                f"INSERT INTO {lake}.schema_migrations VALUES (?, ?, ?)", [version, name, datetime.now(UTC)]
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        applied.append(version)
    return applied
