"""A damaged store is refused at start (exit 5, a message naming the ways out, no traceback, nothing
changed), never started empty; --repair, --reset and --restore-backup are the ways out; an
acknowledged job survives kill -9 + a deleted WAL, or the server refuses to start."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from jobsched.server.runtime import Runtime
from jobsched.store.backup import backups, make_backup
from tests.integration.helpers import manifest
from tests.integration.server_proc import Server, damage, refused, wait_until

EXIT_STORE_DAMAGED = 5


def home_with_jobs(tmp_path: Path, n: int = 3) -> Path:
    home = tmp_path / "home"
    rt = Runtime(home, backup_interval=0)  # not started: the jobs stay Pending
    for i in range(n):
        rt.service.submit(manifest(f"job-{i}", [sys.executable, "-c", "pass"]))
    rt.stop()
    return home


@pytest.mark.parametrize("how", ["deleted", "empty", "truncated", "random bytes", "garbage inside"])
def test_damaged_store_is_refused_with_exit_5(tmp_path: Path, how: str) -> None:
    home = home_with_jobs(tmp_path)
    damage(home / "state.db", how)
    before = {p.name: p.read_bytes() for p in home.glob("state.*")}
    r = refused(home)
    assert r.returncode == EXIT_STORE_DAMAGED, r.stderr
    assert "error: the jobsched store in" in r.stderr and "is damaged" in r.stderr
    assert "--repair" in r.stderr and "--reset" in r.stderr and "--restore-backup" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert {p.name: p.read_bytes() for p in home.glob("state.*")} == before  # nothing changed


def test_fresh_home_and_clean_restart_start(tmp_path: Path) -> None:
    home = home_with_jobs(tmp_path)
    srv = Server(home, "--backup-interval", "0")
    try:
        assert sorted(j.name for j in srv.client.list()) == ["job-0", "job-1", "job-2"]
    finally:
        srv.stop()
    assert (home / "state.marker").exists() and not (home / "state.db-wal").exists()


def test_repair_keeps_what_can_be_read(tmp_path: Path) -> None:
    home = home_with_jobs(tmp_path, n=120)
    os.truncate(home / "state.db", (home / "state.db").stat().st_size * 3 // 4)
    srv = Server(home, "--repair", "--backup-interval", "0")
    try:
        names = {j.name for j in srv.client.list()}
        assert 0 < len(names) < 120 and names <= {f"job-{i}" for i in range(120)}
        assert "repaired" in srv.output()
    finally:
        srv.stop()
    assert list(home.glob("state.db.broken-*"))  # the damaged file kept aside


def test_reset_starts_empty_keeping_the_damaged_file(tmp_path: Path) -> None:
    home = home_with_jobs(tmp_path)
    damage(home / "state.db", "random bytes")
    damaged = (home / "state.db").read_bytes()
    srv = Server(home, "--reset", "--backup-interval", "0")
    try:
        assert srv.client.list() == []
    finally:
        srv.stop()
    kept = list(home.glob("state.db.broken-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    home = home_with_jobs(tmp_path, n=2)
    backup = make_backup(home / "state.db", home)
    rt = Runtime(home, backup_interval=0)
    rt.service.submit(manifest("after-backup", [sys.executable, "-c", "pass"]))
    rt.stop()
    # Copying the backup in place by hand is an older copy: refused, not silently accepted.
    (home / "state.db").write_bytes(backup.read_bytes())
    r = refused(home)
    assert r.returncode == EXIT_STORE_DAMAGED and "older copy" in r.stderr, r.stderr
    srv = Server(home, "--restore-backup", str(backup), "--backup-interval", "0")
    try:
        assert sorted(j.name for j in srv.client.list()) == ["job-0", "job-1"]
    finally:
        srv.stop()
    assert list(home.glob("state.db.replaced-*"))
    bad = tmp_path / "not-a-backup.db"
    bad.write_bytes(b"hello")
    r = refused(home, "--restore-backup", str(bad))
    assert r.returncode == 2 and "--restore-backup" in r.stderr and "Traceback" not in r.stderr


def test_periodic_backups_are_kept_to_n(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = Server(home, "--backup-interval", "0.2", "--backup-keep", "2")
    try:
        wait_until(lambda: len(backups(home)) == 2 and not list((home / "backups").glob(".*")), "backups")
        srv.client.submit(manifest("in-backup", [sys.executable, "-c", "pass"]))
    finally:
        srv.stop()
    assert len(backups(home)) == 2  # pruned; the last one taken at the clean shutdown
    rt = Runtime(tmp_path / "other", backup_interval=0)
    rt.stop()
    from jobsched.store import repair

    repair.restore(tmp_path / "other", backups(home)[-1])
    rt = Runtime(tmp_path / "other", backup_interval=0)
    try:
        assert [j.name for j in rt.service.list()] == ["in-backup"]
    finally:
        rt.stop()


def test_wal_deleted_after_kill9_never_loses_an_acknowledged_job_silently(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = Server(home, "--backup-interval", "0.5")
    srv.client.submit(manifest("cancelled", [sys.executable, "-c", "import time; time.sleep(120)"]))
    wait_until(lambda: srv.client.get("cancelled").phase.value == "Running", "cancelled running")
    srv.client.cancel("cancelled")
    wait_until(lambda: srv.client.get("cancelled").phase.value == "Cancelled", "cancelled")
    acked = srv.client.submit(manifest("acked", [sys.executable, "-c", "pass"]))
    assert acked.name == "acked"
    mark = (home / "state.db-wal").stat().st_mtime
    wait_until(lambda: backups(home) and backups(home)[-1].stat().st_mtime > mark + 0.6, "a backup after the ack")
    srv.kill9()
    os.unlink(home / "state.db-wal")
    r = refused(home)
    assert r.returncode == EXIT_STORE_DAMAGED and "state.db-wal is missing" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    srv = Server(home, "--repair")
    try:
        jobs = {j.name: j for j in srv.client.list()}
        assert "acked" in jobs  # from the backup taken after the acknowledgement
        st = srv.client.get("cancelled")
        assert st.phase.value == "Cancelled" and len(st.attempts) == 1  # not run again
    finally:
        srv.stop()


def test_healthz_says_when_the_store_fails_a_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = Server(home, "--backup-interval", "0")
    try:
        assert srv.healthz().status_code == 200
        srv.client.submit(manifest("x", [sys.executable, "-c", "pass"]))
        with open(home / "state.db", "r+b") as f:  # damage under the running server
            f.seek(0, 2)
            size = f.tell()
            f.seek(100)
            f.write(os.urandom(size - 100))
        os.unlink(home / "state.db-wal")  # its pages would hide the damage from readers
        r = wait_until(lambda: (h := srv.healthz()).status_code == 503 and h, "healthz 503")
        reason = r.json()["reason"]  # type: ignore[union-attr]
        assert "fails a read" in reason or "malformed" in reason, reason
        # The controller backs off: it logs its 1st, 2nd, 4th... failure, not one per 0.1 s tick.
        why = wait_until(lambda: re.search(r"failed (\d+) time", srv.healthz().json().get("reason", "")),
                         "controller failures")
        failures = int(why.group(1))  # type: ignore[union-attr]
        logged = srv.output().count("controller tick failed")
        assert logged <= failures.bit_length() + 1, (logged, failures)
    finally:
        srv.stop()


def test_a_home_from_before_the_marker_is_adopted_but_not_an_empty_one_that_ran_jobs(tmp_path: Path) -> None:
    from jobsched.store import Store
    from jobsched.store.integrity import StoreDamaged, open_checked

    home = home_with_jobs(tmp_path, n=1)
    (home / "state.marker").unlink()  # as an older jobsched left it: no marker, no identity
    store = Store(home / "state.db")
    with store.tx() as c:
        c.execute("DELETE FROM meta")
    store.close()
    rt = Runtime(home, backup_interval=0)
    try:
        assert [j.name for j in rt.service.list()] == ["job-0"]
    finally:
        rt.stop()
    assert (home / "state.marker").exists()
    (home / "state.marker").unlink()
    (home / "state.db").unlink()
    (home / "runs" / "default__job-0").mkdir(parents=True)
    with pytest.raises(StoreDamaged, match="holds the logs of jobs this home ran"):
        open_checked(home)
