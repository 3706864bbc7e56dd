"""Workflow state in its own tables of the runtime's SQLite file (WAL), so a restart resumes.

``workflow_nodes`` holds the live tree; finished loop children move to ``workflow_archive`` (so a
10,000-item loop never sits in memory); ``workflow_cancels`` holds cancel intents, written before
the engine acts on them.
"""

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
CREATE TABLE IF NOT EXISTS workflow_archive (
    namespace TEXT NOT NULL, workflow TEXT NOT NULL, parent TEXT NOT NULL, idx INTEGER NOT NULL,
    name TEXT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (namespace, workflow, name));
CREATE INDEX IF NOT EXISTS workflow_archive_parent ON workflow_archive (namespace, workflow, parent, idx);
CREATE TABLE IF NOT EXISTS workflow_cancels (
    namespace TEXT NOT NULL, name TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (namespace, name));
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
                for group, idx, sub in st._archive:
                    for node in sub:
                        key = (st.namespace, st.name, node.name)
                        self._db.execute("INSERT OR REPLACE INTO workflow_archive VALUES (?,?,?,?,?,?)",
                                         (*key[:2], group if node is sub[0] else node.parent or group,
                                          idx if node is sub[0] else -1, node.name, node.model_dump_json()))
                        self._db.execute("DELETE FROM workflow_nodes WHERE namespace=? AND workflow=? "
                                         "AND name=?", key)
                        self._saved.pop(key, None)
                for name, node in st.nodes.items():
                    key = (st.namespace, st.name, name)
                    text = node.model_dump_json()
                    if self._saved.get(key) != text:
                        self._db.execute("INSERT OR REPLACE INTO workflow_nodes VALUES (?,?,?,?)",
                                         (*key, text))
                        self._saved[key] = text
                self._db.execute("COMMIT")
                st._archive.clear()
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

    def archived(self, namespace: str, workflow: str, parent: str | None = None,
                 limit: int = -1) -> list[NodeStatus]:
        """Finished loop children moved out of the live tree: those of ``parent`` in item order (the
        loop's aggregate outputs), or all of them (logs, status) up to ``limit``."""
        sql = "SELECT node FROM workflow_archive WHERE namespace=? AND workflow=?"
        args: list[object] = [namespace, workflow]
        if parent is not None:
            sql += " AND parent=? AND idx>=0 ORDER BY idx"
            args.append(parent)
        with self._lock:
            rows = self._db.execute(sql + " LIMIT ?", [*args, limit]).fetchall()
        return [NodeStatus.model_validate_json(r[0]) for r in rows]

    def archived_count(self, namespace: str, workflow: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM workflow_archive WHERE namespace=? AND workflow=?",
                                   (namespace, workflow)).fetchone()
        return int(row[0])

    def request_cancel(self, namespace: str, name: str, at: float) -> None:
        """Store a cancel intent (it survives a restart; the engine acts on it before expanding)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO workflow_cancels VALUES (?,?,?)", (namespace, name, at))

    def cancel_requests(self) -> set[tuple[str, str]]:
        with self._lock:
            return {(r[0], r[1]) for r in self._db.execute("SELECT namespace, name FROM workflow_cancels")}
