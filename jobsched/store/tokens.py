"""API tokens in the store (a ``tokens`` table of the same SQLite file): only a SHA-256 digest of
each token is kept, never the token. Rows are never deleted: a revoked token keeps its row (and its
name, so that the audit log stays unambiguous)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from jobsched.store.sqlite import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,       -- sha256 hex of the token
    role TEXT NOT NULL,                -- admin | user | viewer
    namespaces TEXT NOT NULL,          -- JSON list; empty = every namespace (admin, viewer)
    created_at REAL NOT NULL,
    revoked_at REAL
)"""


@dataclass(frozen=True)
class TokenRow:
    name: str
    digest: str
    role: str
    namespaces: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None


class TokenTable:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.tx() as c:
            c.execute(SCHEMA)

    def insert(self, row: TokenRow) -> bool:
        """Store a new token; False if the name is taken (revoked names stay taken)."""
        with self.store.tx() as c:
            if c.execute("SELECT 1 FROM tokens WHERE name = ?", (row.name,)).fetchone():
                return False
            c.execute("INSERT INTO tokens (name, digest, role, namespaces, created_at) VALUES (?, ?, ?, ?, ?)",
                      (row.name, row.digest, row.role, json.dumps(list(row.namespaces)), row.created_at))
        return True

    def revoke(self, name: str, now: float) -> bool:
        """Mark a token revoked (idempotent); False if there is no such token."""
        with self.store.tx() as c:
            if not c.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                return False
            c.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name))
        return True

    def all(self) -> list[TokenRow]:
        with self.store.tx() as c:
            rows = c.execute("SELECT name, digest, role, namespaces, created_at, revoked_at FROM tokens "
                             "ORDER BY created_at, name").fetchall()
        return [TokenRow(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]
