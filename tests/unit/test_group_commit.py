"""Group commit on the real SQLite store: concurrent submissions share commits, every one is
stored once it returns, and one that fails is undone alone."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from jobsched.store import Store


def test_concurrent_writes_share_commits_and_all_land(tmp_path):
    store = Store(tmp_path / "state.db")
    store._conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    start = threading.Barrier(16)

    def write(i: int) -> int:
        if i < 16:
            start.wait()  # all 16 threads at once: the later ones queue behind the first commit
        return int(store.grouped(lambda c: c.execute("INSERT INTO t VALUES (?)", (f"k{i}",)).rowcount))

    with ThreadPoolExecutor(16) as ex:
        assert sum(ex.map(write, range(320))) == 320
    assert store._q("SELECT COUNT(*) AS n FROM t")[0]["n"] == 320
    assert store._group.writes == 320 and store._group.commits < 320  # fewer fsyncs than writes
    store.close()


def test_a_failing_write_is_undone_alone(tmp_path):
    store = Store(tmp_path / "state.db")
    store._conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    store.grouped(lambda c: c.execute("INSERT INTO t VALUES ('taken')"))
    gate = threading.Event()
    errors: list[BaseException] = []

    def slow_first(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('first')")
        gate.wait(10)  # holds the commit open while the other two queue behind it

    def clash(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('other')")
        c.execute("INSERT INTO t VALUES ('taken')")  # UNIQUE: this write fails, and only it

    def run(fn) -> None:
        try:
            store.grouped(fn)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in
               (slow_first, clash, lambda c: c.execute("INSERT INTO t VALUES ('third')"))]
    threads[0].start()
    while not store._group._busy:
        threading.Event().wait(0.01)
    for t in threads[1:]:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.IntegrityError)
    rows = {r["k"] for r in store._q("SELECT k FROM t")}
    assert rows == {"taken", "first", "third"}  # 'other' was rolled back with its failing write
    store.close()

