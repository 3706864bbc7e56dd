"""A store that refuses to lie: the marker, the checks at start, and a clean close.

``$JOBSCHED_HOME/state.marker`` (JSON, replaced atomically) names the database the home holds: a
random ``store_id`` (also in the database's ``meta`` table), a ``generation`` bumped at every start
(also in ``meta``), and ``state``: ``running`` from start until a clean close, then ``clean``.

:func:`open_checked` refuses (:class:`StoreDamaged`) a home whose marker says it had state when the
database is missing, empty, not SQLite (random bytes), truncated or corrupt (``PRAGMA
quick_check``), lacks the schema, belongs to another store, is an older copy (generation behind
the marker), or lost its write-ahead log after an unclean stop (SQLite never deletes ``-wal``
while the server runs, so a missing one means acknowledged writes may be gone). The ways out are
explicit: ``jobsched server --repair``, ``--reset`` or ``--restore-backup FILE`` (``repair.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from jobsched.store.sqlite import Store

DB = "state.db"
MARKER = "state.marker"
TABLES = ("jobs", "attempts", "events", "queues", "history", "timelines", "meta")
HEADER = b"SQLite format 3\x00"
WAYS_OUT = ("Nothing was changed. The ways out (each keeps the damaged file aside):\n"
            "  jobsched server --repair               keep what can still be read, filled in from "
            "the newest backup\n"
            "  jobsched server --restore-backup FILE  put a backup (in {home}/backups) in place\n"
            "  jobsched server --reset                start with an empty store")


class StoreDamaged(RuntimeError):
    """The store at start is not the one the home had; the message says what and the ways out."""

    def __init__(self, home: Path, what: str) -> None:
        super().__init__(f"the jobsched store in {home} is damaged: {what}.\n"
                         + WAYS_OUT.format(home=home))


def read_marker(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / MARKER).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StoreDamaged(home, f"{home / MARKER} is unreadable ({e})") from None
    if not isinstance(data, dict) or "store_id" not in data:
        raise StoreDamaged(home, f"{home / MARKER} is not a jobsched marker")
    return data


def write_marker(home: Path, **data: Any) -> None:
    """Replace the marker atomically and durably (fsync the file, then the directory)."""
    tmp = home / (MARKER + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, home / MARKER)
    fsync_dir(home)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_file(db: Path) -> str | None:
    """Why ``db`` is not a sound jobsched database (None if it is): empty, not SQLite, fails
    ``PRAGMA quick_check``, or lacks the schema. Opens it, so a write-ahead log beside it is applied."""
    try:
        size = db.stat().st_size
        with open(db, "rb") as f:
            head = f.read(len(HEADER))
    except FileNotFoundError:
        return f"{db} is missing"
    except OSError as e:
        return f"{db} cannot be read ({e.strerror})"
    if size == 0:
        return f"{db} is empty (0 bytes)"
    if head != HEADER:
        return f"{db} is not a SQLite database (overwritten or truncated: it does not start with " \
               "the SQLite header)"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return f"{db} is corrupt or truncated ({e})"
    if rows != ["ok"]:
        return f"{db} fails its integrity check (truncated or corrupt): {'; '.join(rows)[:400]}"
    missing = [t for t in TABLES if t not in tables and t != "meta"]
    if missing:
        return f"{db} lacks the jobsched schema (no table {', '.join(missing)})"
    return None


def _ran_jobs(home: Path) -> bool:
    runs = home / "runs"
    return runs.is_dir() and any(runs.iterdir())


def _meta(store: Store) -> dict[str, str]:
    return {r["key"]: r["value"] for r in store._q("SELECT key, value FROM meta")}


def open_checked(home: Path) -> Store:
    """Open ``home/state.db`` after the checks above; bump its generation and mark it running.
    Raises :class:`StoreDamaged` instead of ever starting empty over lost state."""
    db = home / DB
    marker = read_marker(home)
    exists = db.exists() and db.stat().st_size > 0
    if marker is None and not exists and _ran_jobs(home):
        raise StoreDamaged(home, f"{db} is {'empty' if db.exists() else 'missing'}, but {home / 'runs'} "
                           "holds the logs of jobs this home ran")
    if (marker is not None and marker.get("state") == "running" and exists
            and not (home / (DB + "-wal")).exists()):
        raise StoreDamaged(home, f"{db}-wal is missing after an unclean stop: the writes acknowledged "
                           "since the last checkpoint may be lost (SQLite never removes it while the "
                           "server runs)")
    if marker is not None or exists:
        why = verify_file(db)
        if why is not None:
            raise StoreDamaged(home, why)
    try:
        store = Store(db)
        meta = _meta(store)
    except sqlite3.DatabaseError as e:
        raise StoreDamaged(home, f"{db} cannot be opened ({e})") from None
    gen = int(meta.get("generation", "0"))
    if marker is not None:
        if meta.get("store_id") != marker["store_id"]:
            store.close()
            raise StoreDamaged(home, f"{db} is store {meta.get('store_id', '(none)')}, but the marker "
                               f"names store {marker['store_id']}: another home's database was put here")
        allowed = {int(marker["generation"]), int(marker.get("pending", marker["generation"]))}
        if gen not in allowed:
            store.close()
            raise StoreDamaged(home, f"{db} is generation {gen}, but the marker says "
                               f"{marker['generation']}: an older copy was put in place (restore a "
                               "backup on purpose with --restore-backup)")
    store_id = meta.get("store_id") or (marker or {}).get("store_id") or uuid.uuid4().hex
    write_marker(home, store_id=store_id, generation=gen, pending=gen + 1, state="running")
    with store.tx() as c:
        c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', ?), ('generation', ?)",
                  (store_id, str(gen + 1)))
    write_marker(home, store_id=store_id, generation=gen + 1, state="running")
    with contextlib.suppress(sqlite3.Error):  # the schema and identity into the file itself
        store._q("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def close_clean(store: Store, home: Path) -> None:
    """Checkpoint the WAL into the database, mark the home clean, close."""
    def mark() -> None:
        try:
            busy, logged, done = store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            meta = _meta(store)
        except sqlite3.Error:
            return
        if not busy and logged == done and "store_id" in meta:
            try:
                write_marker(home, store_id=meta["store_id"], generation=int(meta.get("generation", 0)),
                             state="clean")
            except OSError:  # e.g. a full disk: the next start sees an unclean stop and checks the WAL
                pass

    store.close(before=mark)
