"""The state store: one SQLite file (WAL) under $JOBSCHED_HOME holding jobs, attempts, events,
queues and the memory history. Thread-safe: writes go through one connection behind one lock, and
every write is a transaction, so a crash (even SIGKILL) never leaves a half-written job. Reads
outside a transaction use a connection of their own per thread (WAL lets readers run beside the
writer), so an API read never waits for a controller transaction."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobsched.fastjson import loads

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    phase TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    created_at REAL NOT NULL,
    admitted_at REAL,
    finished_at REAL,
    family TEXT NOT NULL,
    memory INTEGER NOT NULL,          -- per-replica memory request for the next attempt
    sizing TEXT NOT NULL DEFAULT '{}', -- SizingInfo JSON
    sizing_ready INTEGER NOT NULL DEFAULT 1,
    retries_used INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    UNIQUE(namespace, name)
);
CREATE INDEX IF NOT EXISTS jobs_phase ON jobs(phase);
CREATE INDEX IF NOT EXISTS jobs_order ON jobs(created_at, name, namespace);  -- list pages
CREATE TABLE IF NOT EXISTS attempts (
    job_uid TEXT NOT NULL REFERENCES jobs(uid),
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,               -- starting | running | stopping | ended
    requests TEXT NOT NULL,            -- Resources.as_dict() per replica
    memory_limit INTEGER,
    assignments TEXT NOT NULL,         -- [[rank, node, [gpus]], ...]
    handles TEXT NOT NULL DEFAULT '{}',
    replicas TEXT NOT NULL DEFAULT '{}',-- rank -> ReplicaInfo dict
    stop_reason TEXT,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    reason TEXT,
    message TEXT,
    peak_memory INTEGER,
    enforcement TEXT,
    resumed INTEGER NOT NULL DEFAULT 0,
    launch TEXT NOT NULL DEFAULT '{}', -- GangLaunch as JSON, for re-adoption
    PRIMARY KEY (job_uid, idx)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_uid TEXT NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_uid);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    family TEXT NOT NULL,
    time REAL NOT NULL,
    peak INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_family ON history(family, time);
CREATE TABLE IF NOT EXISTS meta (  -- the store's identity: store_id, generation (see integrity.py)
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS timelines (  -- each replica's memory timeline, per attempt
    job_uid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_uid, idx, rank)
);
"""


@dataclass
class JobRow:
    uid: str
    namespace: str
    name: str
    manifest: dict[str, Any]
    queue: str
    priority: int
    phase: str
    reason: str | None
    message: str | None
    created_at: float
    admitted_at: float | None
    finished_at: float | None
    family: str
    memory: int
    sizing: dict[str, Any]
    sizing_ready: bool
    retries_used: int
    cancel_requested: bool
    cost: float

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class AttemptRow:
    job_uid: str
    idx: int
    state: str
    requests: dict[str, int]
    memory_limit: int | None
    assignments: list[list[Any]]
    handles: dict[str, Any]
    replicas: dict[str, dict[str, Any]]
    stop_reason: str | None
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    message: str | None
    peak_memory: int | None
    enforcement: str | None
    resumed: bool
    launch: dict[str, Any]


class StoreFull(OSError):
    """A write failed because the disk holding the store is full: nothing of it was stored."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(errno.ENOSPC, f"no space left on HOME ({path.parent}): {cause}; the request "
                         "was not stored. Free space on that disk and retry")

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(e: BaseException) -> bool:
    """SQLite's SQLITE_FULL, or an OSError ENOSPC/EDQUOT."""
    if isinstance(e, sqlite3.OperationalError):
        return "database or disk is full" in str(e) or getattr(e, "sqlite_errorcode", None) == 13
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


_JSON_JOB = {"manifest", "sizing"}
_JSON_ATT = {"requests", "assignments", "handles", "replicas", "launch"}


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                     timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self.write_error: str | None = None
        self._local = threading.local()  # per thread: transaction depth, reader connection
        self._readers: dict[int, sqlite3.Connection] = {}  # thread id -> its reader connection
        self._readers_lock = threading.Lock()  # not the write lock: a reader never waits for a writer
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so an acknowledged write survives a power loss
        # (NORMAL only syncs at checkpoints). Cost measured in benchmarks/bench_store.py.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        from jobsched.store.group import GroupCommit

        self._group = GroupCommit(self.tx)

    def grouped(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """``fn(conn)`` in a transaction shared with other threads' grouped writes (one fsync for
        all of them; see group.py). Returns once it is committed; raises what ``fn`` raised (only
        its own writes undone) or what the commit raised (StoreFull: nothing written)."""
        return self._group.run(fn)

    def close(self, before: Callable[[], None] | None = None) -> None:
        with self._lock, self._readers_lock:
            if before is not None:
                before()
            for reader in list(self._readers.values()):
                reader.close()
            self._readers.clear()
            with suppress(sqlite3.Error):  # fold the WAL into the database before it is removed
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction. A full disk raises :class:`StoreFull` with nothing written. Inside this
        thread's open transaction, it joins that one (one commit for a batch of updates)."""
        with self._lock:
            if getattr(self._local, "depth", 0):
                self._local.depth += 1
                try:
                    yield self._conn
                finally:
                    self._local.depth -= 1
                return
            self._local.depth = getattr(self._local, "depth", 0) + 1
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except (sqlite3.OperationalError, OSError) as e:
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if is_disk_full(e):
                    self.write_error = str(StoreFull(self.path, e))
                    raise StoreFull(self.path, e) from None
                raise
            finally:
                self._local.depth -= 1
            self.write_error = None

    def check(self) -> str | None:
        """None while the store answers reads and the last write did not fail for a full disk;
        else the reason (for ``/healthz``)."""
        try:
            self._q("SELECT name FROM sqlite_master")
            self._q("SELECT uid, manifest FROM jobs ORDER BY rowid DESC LIMIT 1")
            self._q("SELECT uid FROM jobs ORDER BY rowid LIMIT 1")
        except sqlite3.Error as e:
            return f"the store ({self.path}) fails a read: {e}"
        return self.write_error

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (read-only), made on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only=ON")
            with self._readers_lock:  # drop the connections of threads that have ended
                alive = {t.ident for t in threading.enumerate()}
                for ident in [i for i in self._readers if i not in alive]:
                    self._readers.pop(ident).close()
                self._readers[threading.get_ident()] = conn
            self._local.reader = conn
        return conn

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if getattr(self._local, "depth", 0):  # inside this thread's transaction: see its writes
            with self._lock:
                return list(self._conn.execute(sql, args).fetchall())
        return list(self._reader().execute(sql, args).fetchall())

    # jobs -------------------------------------------------------------------------------------
    def insert_job(self, row: JobRow, conn: sqlite3.Connection | None = None) -> None:
        d = _encode(row.__dict__, _JSON_JOB)
        sql = f"INSERT INTO jobs ({', '.join(d)}) VALUES ({', '.join('?' for _ in d)})"
        if conn is not None:
            conn.execute(sql, tuple(d.values()))
            return
        with self.tx() as c:
            c.execute(sql, tuple(d.values()))

    def update_job(self, uid: str, conn: sqlite3.Connection | None = None, **fields: Any) -> None:
        d = _encode(fields, _JSON_JOB)
        sets = ", ".join(f"{k} = ?" for k in d)
        sql = f"UPDATE jobs SET {sets} WHERE uid = ?"
        if conn is not None:
            conn.execute(sql, (*d.values(), uid))
            return
        with self.tx() as c:
            c.execute(sql, (*d.values(), uid))

    def job(self, namespace: str, name: str) -> JobRow | None:
        rows = self._q("SELECT * FROM jobs WHERE namespace = ? AND name = ?", (namespace, name))
        return _job(rows[0]) if rows else None

    def delete_job(self, uid: str) -> None:
        """Remove a job with its attempts, events and timelines (one transaction); its family's
        memory history stays: it is what later jobs are sized from."""
        with self.tx() as c:
            for table, col in (("timelines", "job_uid"), ("events", "job_uid"), ("attempts", "job_uid"),
                               ("jobs", "uid")):
                c.execute(f"DELETE FROM {table} WHERE {col} = ?", (uid,))

    def job_by_uid(self, uid: str) -> JobRow | None:
        rows = self._q("SELECT * FROM jobs WHERE uid = ?", (uid,))
        return _job(rows[0]) if rows else None

    def jobs(self, phases: tuple[str, ...] | None = None, namespace: str | None = None,
             queue: str | None = None, cancel_requested: bool | None = None,
             unsized: bool = False) -> list[JobRow]:
        """``unsized``: only jobs whose sizing has no ``estimated`` entry yet (the estimator's)."""
        where, args = _where(phases, namespace, queue)
        if cancel_requested is not None:
            where += " AND cancel_requested = ?"
            args.append(int(cancel_requested))
        if unsized:
            where += " AND json_type(sizing, '$.estimated') IS NULL"
        return [_job(r) for r in self._q(f"SELECT * FROM jobs WHERE {where} ORDER BY created_at, name",
                                         tuple(args))]

    def pending_jobs(self, manifests: dict[str, dict[str, Any]]) -> list[JobRow]:
        """Pending jobs, as :meth:`jobs` gives them, but each manifest (never changed after submit)
        is read and parsed once: ``manifests`` caches uid -> manifest and is pruned to these jobs."""
        cols = ", ".join(f for f in JobRow.__dataclass_fields__ if f != "manifest")
        rows = self._q(f"SELECT {cols} FROM jobs WHERE phase = 'Pending' ORDER BY created_at, name")
        missing = [r["uid"] for r in rows if r["uid"] not in manifests]
        for i in range(0, len(missing), 500):
            part = missing[i:i + 500]
            for r in self._q(f"SELECT uid, manifest FROM jobs WHERE uid IN ({', '.join('?' for _ in part)})",
                             tuple(part)):
                manifests[r["uid"]] = json.loads(r["manifest"])
        uids = {r["uid"] for r in rows}
        for uid in [u for u in manifests if u not in uids]:
            del manifests[uid]
        return [_job(r, manifests[r["uid"]]) for r in rows if r["uid"] in manifests]

    def job_page(self, phases: tuple[str, ...] | None = None, namespace: str | None = None,
                 queue: str | None = None, limit: int = 500,
                 after: tuple[float, str, str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """One page of job summaries in (created_at, name, namespace) order, after ``after``: only
        the columns a listing shows (no manifest), the attempt count and the latest attempt's
        requests. Returns the rows and how many more match."""
        where, args = _where(phases, namespace, queue, prefix="j.")
        if after is not None:
            where += " AND (j.created_at, j.name, j.namespace) > (?, ?, ?)"
            args += list(after)
        rows = self._q(
            f"SELECT {', '.join('j.' + c for c in SUMMARY_COLUMNS)}, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.job_uid = j.uid) AS attempts, "
            "(SELECT a.requests FROM attempts a WHERE a.job_uid = j.uid ORDER BY a.idx DESC LIMIT 1) "
            "AS last_requests, "
            "(SELECT a.memory_limit FROM attempts a WHERE a.job_uid = j.uid ORDER BY a.idx DESC LIMIT 1) "
            "AS last_limit, "
            "(SELECT a.assignments FROM attempts a WHERE a.job_uid = j.uid ORDER BY a.idx DESC LIMIT 1) "
            f"AS last_assignments FROM jobs j WHERE {where} ORDER BY j.created_at, j.name, j.namespace LIMIT ?",
            (*args, limit))
        out = [dict(r) for r in rows]
        remaining = 0
        if len(out) == limit:
            last = out[-1]
            rest = self._q(f"SELECT COUNT(*) AS n FROM jobs j WHERE {where} AND "
                           "(j.created_at, j.name, j.namespace) > (?, ?, ?)",
                           (*args, last["created_at"], last["name"], last["namespace"]))
            remaining = int(rest[0]["n"])
        return out, remaining

    def job_marks(self) -> dict[tuple[str, str], tuple[str, str | None, int]]:
        """(namespace, name) -> (phase, reason, number of attempts) of every job: what tells a
        status mirror that a job changed, in one cheap query."""
        rows = self._q("SELECT j.namespace, j.name, j.phase, j.reason, COUNT(a.idx) FROM jobs j "
                       "LEFT JOIN attempts a ON a.job_uid = j.uid GROUP BY j.uid")
        return {(r[0], r[1]): (r[2], r[3], int(r[4])) for r in rows}

    def job_counts(self) -> dict[tuple[str, str], int]:
        """(phase, queue) -> number of jobs."""
        return {(r["phase"], r["queue"]): int(r["n"])
                for r in self._q("SELECT phase, queue, COUNT(*) AS n FROM jobs GROUP BY phase, queue")}

    def jobs_by_uid(self, uids: set[str], with_manifest: bool = True) -> dict[str, JobRow]:
        """``with_manifest=False``: rows whose ``manifest`` is left empty (not read nor parsed)."""
        if not uids:
            return {}
        marks = ", ".join("?" for _ in uids)
        if with_manifest:
            return {r["uid"]: _job(r) for r in self._q(f"SELECT * FROM jobs WHERE uid IN ({marks})", tuple(uids))}
        cols = ", ".join(f for f in JobRow.__dataclass_fields__ if f != "manifest")
        return {r["uid"]: _job(r, {}) for r in self._q(f"SELECT {cols} FROM jobs WHERE uid IN ({marks})",
                                                       tuple(uids))}

    # attempts ---------------------------------------------------------------------------------
    def insert_attempt(self, row: AttemptRow, conn: sqlite3.Connection) -> None:
        d = _encode(row.__dict__, _JSON_ATT)
        conn.execute(f"INSERT INTO attempts ({', '.join(d)}) VALUES ({', '.join('?' for _ in d)})",
                     tuple(d.values()))

    def update_attempt(self, uid: str, idx: int, conn: sqlite3.Connection | None = None,
                       **fields: Any) -> None:
        d = _encode(fields, _JSON_ATT)
        sql = f"UPDATE attempts SET {', '.join(f'{k} = ?' for k in d)} WHERE job_uid = ? AND idx = ?"
        if conn is not None:
            conn.execute(sql, (*d.values(), uid, idx))
            return
        with self.tx() as c:
            c.execute(sql, (*d.values(), uid, idx))

    def attempts(self, uid: str) -> list[AttemptRow]:
        return [_att(r) for r in self._q("SELECT * FROM attempts WHERE job_uid = ? ORDER BY idx", (uid,))]

    def live_attempts(self, light: bool = False) -> list[AttemptRow]:
        """Attempts not ended. ``light``: without their launch (the largest JSON column; the
        scheduling snapshot reads requests and assignments only): ``launch`` is ``{}``."""
        return [_att(r, light) for r in self._q("SELECT * FROM attempts WHERE state != 'ended'")]

    # events, queues, history ------------------------------------------------------------------
    def add_event(self, uid: str, time: float, type_: str, reason: str, message: str,
                  conn: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO events (job_uid, time, type, reason, message) VALUES (?, ?, ?, ?, ?)"
        if conn is not None:
            conn.execute(sql, (uid, time, type_, reason, message))
            return
        with self.tx() as c:
            c.execute(sql, (uid, time, type_, reason, message))

    def events(self, uid: str) -> list[sqlite3.Row]:
        return self._q("SELECT * FROM events WHERE job_uid = ? ORDER BY id", (uid,))

    def events_since(self, after: int, limit: int = 500) -> list[sqlite3.Row]:
        """Events of every job after id ``after``, oldest first, with the job's namespace, name and
        queue (for mirrors such as Kubernetes Events)."""
        return self._q("SELECT e.*, j.namespace, j.name, j.queue FROM events e JOIN jobs j ON j.uid = e.job_uid "
                       "WHERE e.id > ? ORDER BY e.id LIMIT ?", (after, limit))

    def last_event_before(self, time: float) -> int:
        """The id of the last event recorded before ``time`` (0: none)."""
        rows = self._q("SELECT MAX(id) AS id FROM events WHERE time < ?", (time,))
        return int(rows[0]["id"] or 0) if rows else 0

    def put_queue(self, name: str, manifest: dict[str, Any]) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO queues (name, manifest) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                      "SET manifest = excluded.manifest", (name, json.dumps(manifest)))

    def queues(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: json.loads(r["manifest"]) for r in self._q("SELECT * FROM queues")}

    def add_history(self, family: str, time: float, peak: int, memory: int, reason: str,
                    conn: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO history (family, time, peak, memory, reason) VALUES (?, ?, ?, ?, ?)"
        if conn is not None:
            conn.execute(sql, (family, time, peak, memory, reason))
            return
        with self.tx() as c:
            c.execute(sql, (family, time, peak, memory, reason))

    def put_timeline(self, uid: str, idx: int, rank: int, data: dict[str, Any],
                     conn: sqlite3.Connection | None = None) -> None:
        sql = ("INSERT INTO timelines (job_uid, idx, rank, data) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(job_uid, idx, rank) DO UPDATE SET data = excluded.data")
        args = (uid, idx, rank, json.dumps(data))
        if conn is not None:
            conn.execute(sql, args)
            return
        with self.tx() as c:
            c.execute(sql, args)

    def timelines(self, uid: str) -> dict[int, dict[int, dict[str, Any]]]:
        """attempt index -> rank -> timeline."""
        out: dict[int, dict[int, dict[str, Any]]] = {}
        for r in self._q("SELECT idx, rank, data FROM timelines WHERE job_uid = ? ORDER BY idx, rank", (uid,)):
            out.setdefault(int(r["idx"]), {})[int(r["rank"])] = json.loads(r["data"])
        return out

    def history(self, family: str, limit: int = 50) -> list[sqlite3.Row]:
        return self._q("SELECT * FROM history WHERE family = ? ORDER BY time DESC LIMIT ?", (family, limit))


SUMMARY_COLUMNS = ("uid", "namespace", "name", "queue", "priority", "phase", "reason", "message", "created_at",
                   "admitted_at", "finished_at", "cost")


def _where(phases: tuple[str, ...] | None, namespace: str | None, queue: str | None,
           prefix: str = "") -> tuple[str, list[Any]]:
    sql, args = "1=1", list[Any]()
    if phases:
        sql += f" AND {prefix}phase IN ({', '.join('?' for _ in phases)})"
        args += list(phases)
    if namespace:
        sql += f" AND {prefix}namespace = ?"
        args.append(namespace)
    if queue:
        sql += f" AND {prefix}queue = ?"
        args.append(queue)
    return sql, args


def _encode(d: dict[str, Any], json_cols: set[str]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if k in json_cols:
            out[k] = json.dumps(v)
        elif isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def _job(r: sqlite3.Row, manifest: dict[str, Any] | None = None) -> JobRow:
    d = dict(r)
    for k in _JSON_JOB:
        d[k] = manifest if k == "manifest" and manifest is not None else loads(d[k])
    d["sizing_ready"] = bool(d["sizing_ready"])
    d["cancel_requested"] = bool(d["cancel_requested"])
    return JobRow(**d)


def _att(r: sqlite3.Row, light: bool = False) -> AttemptRow:
    d = dict(r)
    for k in _JSON_ATT:
        d[k] = {} if light and k == "launch" else loads(d[k])
    d["resumed"] = bool(d["resumed"])
    return AttemptRow(**d)
