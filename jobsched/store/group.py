"""Group commit: writes from many threads share one transaction, so one fsync.

With ``synchronous=FULL`` every commit is an fsync of the WAL (several ms on a busy disk), and the
store's single writer serializes them: one commit per API submission caps submissions at one per
fsync. :class:`GroupCommit` lets the threads that arrive while a commit is in progress queue their
writes; the next of them commits all that are queued in one transaction. Each write still returns
only after the commit that holds it is on disk, and each runs in a SAVEPOINT of its own, so one that
raises (e.g. a name taken) is rolled back alone and raises in its own thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any


class _Item:
    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn, self.result, self.error, self.done = fn, None, None, False


class GroupCommit:
    def __init__(self, tx: Callable[[], Any]) -> None:
        self._tx = tx  # the store's transaction context manager
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._busy = False
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # writes they held

    def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """``fn(conn)`` inside a transaction shared with the writes queued meanwhile; its result
        once that transaction is committed (or its exception, or the commit's)."""
        item = _Item(fn)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with self._tx() as conn:
                for it in batch:
                    conn.execute("SAVEPOINT grouped")
                    try:
                        it.result = it.fn(conn)
                    except Exception as e:  # this write alone is undone
                        conn.execute("ROLLBACK TO grouped")
                        it.error = e
                    conn.execute("RELEASE grouped")
        except BaseException as e:  # the commit itself failed (e.g. a full disk): every write did
            for it in batch:
                it.error, it.result = it.error or e, None
                it.done = True
            if not isinstance(e, Exception):
                raise
            return
        self.commits += 1
        self.writes += len(batch)
        for it in batch:
            it.done = True
