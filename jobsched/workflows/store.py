"""Workflow state in its own tables of the runtime's SQLite file (WAL), so a restart resumes."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from jobsched.workflows.state import NodeStatus, WorkflowState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, phase TEXT NOT NULL,
    created_at REAL NOT NULL, finished_at REAL, state TEXT NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS workflow_nodes (
    namespace TEXT NOT NULL, workflow TEXT NOT NULL, name TEXT NOT NULL, node TEXT NOT NULL,
    PRIMARY KEY (namespace, workflow, name));
"""


class WorkflowStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str, str], str] = {}  # last node JSON written

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, st: WorkflowState) -> None:
        head = st.model_dump(mode="json", exclude={"nodes"})
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO workflows VALUES (?,?,?,?,?,?,?) ON CONFLICT(namespace, name) DO UPDATE "
                    "SET uid=excluded.uid, phase=excluded.phase, finished_at=excluded.finished_at, "
                    "state=excluded.state",
                    (st.namespace, st.name, st.uid, st.phase, st.created_at, st.finished_at,
                     json.dumps(head)))
                for name, node in st.nodes.items():
                    key = (st.namespace, st.name, name)
                    text = node.model_dump_json()
                    if self._saved.get(key) != text:
                        self._db.execute("INSERT OR REPLACE INTO workflow_nodes VALUES (?,?,?,?)",
                                         (*key, text))
                        self._saved[key] = text
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def forget(self, namespace: str, name: str) -> None:
        """Drop the write cache of a finished workflow (its rows stay)."""
        with self._lock:
            for key in [k for k in self._saved if k[:2] == (namespace, name)]:
                del self._saved[key]

    def load(self, namespace: str, name: str) -> WorkflowState | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM workflows WHERE namespace=? AND name=?",
                                   (namespace, name)).fetchone()
            if row is None:
                return None
            nodes = self._db.execute("SELECT name, node FROM workflow_nodes WHERE namespace=? AND workflow=?",
                                     (namespace, name)).fetchall()
        st = WorkflowState.model_validate_json(row[0])
        for node_name, text in nodes:
            st.nodes[node_name] = NodeStatus.model_validate_json(text)
            self._saved[(namespace, name, node_name)] = text
        return st

    def names(self, namespace: str | None = None, active_only: bool = False) -> list[tuple[str, str]]:
        sql = "SELECT namespace, name FROM workflows WHERE 1=1"
        args: list[str] = []
        if namespace is not None:
            sql += " AND namespace=?"
            args.append(namespace)
        if active_only:
            sql += " AND phase IN ('Pending', 'Running')"
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute(sql + " ORDER BY created_at", args)]

    def exists(self, namespace: str, name: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM workflows WHERE namespace=? AND name=?",
                                    (namespace, name)).fetchone() is not None
