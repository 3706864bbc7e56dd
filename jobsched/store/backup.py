"""Online backups of the store with SQLite's backup API, into ``$JOBSCHED_HOME/backups``.

A backup is a consistent copy (it includes what is still in the write-ahead log) taken through its
own read connection, so the server keeps writing meanwhile. It is written to a temporary name,
fsynced, then renamed: a file named ``state-*.db`` is always complete. The last ``keep`` are kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from jobsched.store.integrity import fsync_dir

log = logging.getLogger("jobsched.store")

BACKUPS = "backups"


def backups(home: Path) -> list[Path]:
    """The home's backups, oldest first."""
    d = home / BACKUPS
    return sorted(d.glob("state-*.db")) if d.is_dir() else []


def make_backup(db: Path, home: Path, keep: int = 5) -> Path:
    """Copy ``db`` (a live store) to ``home/backups/state-<UTC time>.db``; prune to ``keep``."""
    d = home / BACKUPS
    d.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:] + "Z"
    final = d / f"state-{stamp}.db"
    tmp = d / f".{final.name}.tmp"
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst, pages=1024)  # in steps: writers are never blocked for long
        finally:
            dst.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
        fsync_dir(d)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        src.close()
    for old in backups(home)[:-keep] if keep > 0 else []:
        with contextlib.suppress(OSError):
            old.unlink()
    return final


class BackupLoop:
    """Backs the store up every ``interval`` seconds (0: never) and once more at :meth:`stop`."""

    def __init__(self, db: Path, home: Path, interval: float = 300.0, keep: int = 5) -> None:
        self.db, self.home, self.interval, self.keep = db, home, interval, keep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="jobsched-backup", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.backup_now()

    def backup_now(self) -> Path | None:
        try:
            path = make_backup(self.db, self.home, self.keep)
        except (OSError, sqlite3.Error) as e:
            self.last_error = f"backup of {self.db} failed: {e}"
            log.warning("%s", self.last_error)
            return None
        self.last_error = None
        return path

    def stop(self) -> None:
        """Stop the loop and take the shutdown backup (only when periodic backups are on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self.backup_now()
