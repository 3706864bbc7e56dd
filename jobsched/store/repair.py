"""The explicit ways out of a damaged store (``jobsched server --repair/--reset/--restore-backup``).

Each keeps what was there aside first (``state.db.broken-<UTC time>`` with its ``-wal``/``-shm``,
renamed together so SQLite still pairs them), and leaves a sound ``state.db`` and a marker that
names it, so the server then starts through the usual checks.

``repair`` copies every row that can still be read, table by table (a read that hits a damaged page
skips ahead by rowid), then fills in, from the newest readable backup, the rows the damaged file
no longer has. Rows are copied with ``INSERT OR IGNORE`` from the newer source first (by mtime:
in WAL mode the database file changes only at checkpoints, so a backup may be the newer).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import struct
import time
import uuid
from pathlib import Path

from jobsched.store.backup import backups
from jobsched.store.integrity import DB, MARKER, fsync_dir, read_marker, verify_file, write_marker
from jobsched.store.sqlite import Store

# Parents first: attempts reference jobs.
ORDER = ("jobs", "queues", "attempts", "events", "history", "timelines")


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def set_aside(home: Path, why: str = "broken") -> Path | None:
    """Move ``state.db`` (and its -wal/-shm) to ``state.db.<why>-<time>``; the new name, or None."""
    if not any((home / (DB + s)).exists() for s in ("", "-wal", "-shm")):
        return None
    aside = home / f"{DB}.{why}-{_stamp()}"
    n = 1
    while aside.exists():
        n += 1
        aside = home / f"{DB}.{why}-{_stamp()}-{n}"
    for suffix in ("-wal", "-shm", ""):  # the database last: never a db without its log
        src = home / (DB + suffix)
        if src.exists():
            os.replace(src, Path(str(aside) + suffix))
    fsync_dir(home)
    return aside if aside.exists() else Path(str(aside) + "-wal")


def _salvage(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> tuple[int, int]:
    """Copy the readable rows of ``table``; (rows copied, read errors)."""
    cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
    try:
        have = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError:
        return 0, 1
    names = [c for c in cols if c in have]
    if not names:
        return 0, 0
    sql = f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    copied = errors = 0
    select = f"SELECT {', '.join(names)} FROM {table}"
    try:  # fast path: the whole table reads
        for row in src.execute(select):
            with contextlib.suppress(sqlite3.IntegrityError):
                copied += dst.execute(sql, row).rowcount
        return copied, errors
    except sqlite3.DatabaseError:
        errors += 1
    # A damaged b-tree: look each rowid up on its own, so only rows on lost pages are lost.
    try:
        top = int(src.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0)
    except sqlite3.DatabaseError:
        top = 0
    rowid, misses = 0, 0
    while rowid < top or misses < 2000:
        rowid += 1
        try:
            row = src.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            errors, row = errors + 1, None
        if row is None:
            misses += 1
            continue
        misses = 0
        with contextlib.suppress(sqlite3.IntegrityError):
            copied += dst.execute(sql, row).rowcount
    return copied, errors


def _open_source(path: Path, work: Path) -> sqlite3.Connection | None:
    """A connection to a scratch copy of ``path`` (with its -wal), padded with zero pages up to the
    size its header gives: a truncated file then still parses, and reads fail only where pages are
    gone. The damaged file itself is left as it was."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
        if len(head) < 100 or head[:16] != b"SQLite format 3\x00":
            return None
        for s in ("", "-wal"):
            Path(str(work) + s).unlink(missing_ok=True)
            if Path(str(path) + s).exists():
                shutil.copyfile(Path(str(path) + s), Path(str(work) + s))
        page = struct.unpack(">H", head[16:18])[0]
        pages = struct.unpack(">I", head[28:32])[0]
        want = (65536 if page == 1 else page) * pages
        if work.stat().st_size < want:
            os.truncate(work, want)
        return sqlite3.connect(str(work))
    except (OSError, sqlite3.DatabaseError):
        return None


def repair(home: Path) -> str:
    """Rebuild ``state.db`` from what can be read; returns a summary for the operator."""
    marker = _marker_or_none(home)
    aside = set_aside(home, "broken")
    fresh = home / (DB + ".repairing")
    for s in ("", "-wal", "-shm"):
        Path(str(fresh) + s).unlink(missing_ok=True)
    Store(fresh).close()
    dst = sqlite3.connect(str(fresh), isolation_level=None)
    dst.execute("PRAGMA foreign_keys=ON")
    report = []
    sources: list[tuple[str, Path]] = []
    if aside is not None and aside.exists():
        sources.append(("the damaged file", aside))
    if backups(home):
        sources.append((f"backup {backups(home)[-1].name}", backups(home)[-1]))
    # The newer source first, so its rows win: in WAL mode the database file is written only at
    # checkpoints, so after a lost WAL a backup can be newer than the file.
    sources.sort(key=lambda s: -s[1].stat().st_mtime)
    store_id: str | None = None
    generation = 0
    scratch = home / (DB + ".salvage")
    for label, path in sources:
        src = _open_source(path, scratch)
        if src is None:
            report.append(f"{label}: nothing readable")
            continue
        with contextlib.suppress(sqlite3.DatabaseError):
            meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
            store_id = store_id or meta.get("store_id")
            generation = max(generation, int(meta.get("generation", 0)))
        dst.execute("BEGIN")
        counts, errs = {}, 0
        for table in ORDER:
            counts[table], e = _salvage(src, dst, table)
            errs += e
        dst.execute("COMMIT")
        src.close()
        for s in ("", "-wal", "-shm"):
            Path(str(scratch) + s).unlink(missing_ok=True)
        report.append(f"{label}: {counts['jobs']} jobs, {counts['attempts']} attempts, "
                      f"{counts['events']} events copied" + (f" ({errs} damaged reads skipped)" if errs else ""))
    store_id = store_id or str((marker or {}).get("store_id") or "") or uuid.uuid4().hex
    generation = max(generation, int(str((marker or {}).get("generation", 0))))
    dst.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', ?), ('generation', ?)",
                (store_id, str(generation)))
    total = dst.execute("SELECT count(*) FROM jobs").fetchone()[0]
    dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dst.close()
    _install(home, fresh, store_id, generation)
    where = f"; the damaged files were kept as {aside.name}*" if aside is not None else ""
    return f"repaired {home / DB}: {total} jobs kept ({'; '.join(report) or 'no sources'}){where}"


def reset(home: Path) -> str:
    """Start empty: the old files are kept aside, the marker removed (a new store is made)."""
    aside = set_aside(home, "broken")
    (home / MARKER).unlink(missing_ok=True)
    kept = f"; the old files were kept as {aside.name}*" if aside is not None else ""
    return f"reset {home / DB}: starting with an empty store{kept}"


def restore(home: Path, backup: Path) -> str:
    """Put ``backup`` in place of the store (the current files kept aside)."""
    backup = backup.expanduser().resolve()
    tmp = home / (DB + ".restoring")
    for s in ("", "-wal", "-shm"):
        Path(str(tmp) + s).unlink(missing_ok=True)
    try:
        shutil.copyfile(backup, tmp)
    except OSError as e:
        raise ValueError(f"--restore-backup: cannot read {backup}: {e.strerror}") from None
    why = verify_file(tmp)
    if why is not None:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"--restore-backup: {why.replace(str(tmp), str(backup))}")
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() else {}
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    store_id = meta.get("store_id") or uuid.uuid4().hex
    generation = int(meta.get("generation", 0))
    if "store_id" not in meta:
        st = Store(tmp)
        with st.tx() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', ?), ('generation', ?)",
                      (store_id, str(generation)))
        st.close()
    aside = set_aside(home, "replaced")
    _install(home, tmp, store_id, generation)
    kept = f"; the previous files were kept as {aside.name}*" if aside is not None else ""
    return f"restored {home / DB} from {backup}{kept}"


def _install(home: Path, new: Path, store_id: str, generation: int) -> None:
    with open(new, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(new, home / DB)
    for s in ("-wal", "-shm"):
        Path(str(new) + s).unlink(missing_ok=True)
    fsync_dir(home)
    write_marker(home, store_id=store_id, generation=generation, state="clean")


def _marker_or_none(home: Path) -> dict[str, object] | None:
    try:
        return read_marker(home)
    except Exception:  # an unreadable marker is replaced by the repair
        return None
