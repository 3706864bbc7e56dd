"""A full disk under the home (a small tmpfs): submits get 507 and nothing is half-written; a replica
writing more output than the disk holds still exits and its job ends; each log is written once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsched.backends.local.shim import LogSink
from jobsched.sdk.errors import JobschedError
from tests.integration.helpers import manifest
from tests.integration.server_proc import Server, fill, wait_until


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("disk-full tests mount a small tmpfs: they need root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "disk"
    mount_tmpfs(d, "16m")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_submit_on_a_full_disk_is_507_and_nothing_is_stored(disk: Path) -> None:
    srv = Server(disk / "home", "--backup-interval", "0")
    try:
        srv.client.submit(manifest("before", [sys.executable, "-c", "pass"]))
        filler = fill(disk)
        acked, refused = [], None
        for i in range(400):  # the WAL may still have room for a few: those are stored and acked
            name = f"job-{i}"
            try:
                srv.client.submit(manifest(name, [sys.executable, "-c", "pass", "x" * 8000]))
            except JobschedError as e:
                refused = (name, str(e))
                break
            acked.append(name)
        assert refused is not None, "no submit was refused on a full disk"
        assert "HTTP 507" in refused[1] and "no space left on HOME" in refused[1], refused[1]
        health = srv.healthz()
        assert health.status_code == 503 and "no space left on HOME" in health.json()["reason"]
        filler.unlink()
        names = {j.name for j in srv.client.list()}
        assert names == {"before", *acked}  # the refused job is not there, every acked one is
        srv.client.submit(manifest(refused[0], [sys.executable, "-c", "pass"]))  # not "already exists"
        wait_until(lambda: srv.healthz().status_code == 200, "healthy again")
    finally:
        srv.stop()


def test_a_replica_flooding_a_full_disk_exits_and_its_job_ends(disk: Path) -> None:
    home = disk / "home"
    srv = Server(home, "--backup-interval", "0")
    try:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * (1 << 20))  # what an operator frees afterwards
        flood = ("import sys\nline = b'x' * 1023 + b'\\n'\nfor _ in range(48 * 1024):\n"
                 "    sys.stdout.buffer.write(line)\nsys.stdout.flush()\nprint('done', file=sys.stderr)\n")
        srv.client.submit(manifest("flood", [sys.executable, "-c", flood], maxRetries=0))
        adir = home / "runs" / "default__flood" / "attempt-0"
        result = adir / "rank-0.result.json"
        wait_until(result.exists, "the replica's result on a full disk")  # it exited: never blocked
        res = json.loads(result.read_text())
        assert res["exit_code"] == 0 and res["log_dropped_bytes"] > 0
        assert (adir / "rank-0.log").stat().st_size < 16 << 20
        ballast.unlink()
        st = wait_until(lambda: (s := srv.client.get("flood")).phase.is_terminal() and s, "the job to end")
        assert st.phase.value == "Succeeded"  # type: ignore[union-attr]
    finally:
        srv.stop()


def test_the_log_drops_output_with_one_marker_when_full(disk: Path) -> None:
    sink = LogSink(disk / "rank-0.log")
    sink.write(b"first\n")
    filler = fill(disk)
    for _ in range(100):
        sink.write(b"y" * 4096 + b"\n")  # returns at once: dropped and counted
    assert sink.dropped_total >= 100 * 4097 - 8192
    filler.unlink()
    sink.write(b"last\n")
    sink.close()
    lines = (disk / "rank-0.log").read_bytes().splitlines()
    markers = [ln for ln in lines if ln.startswith(b"[jobsched]")]
    assert lines[0] == b"first" and lines[-1] == b"last" and len(markers) == 1
    assert b"bytes of output dropped: No space left on device" in markers[0]


def test_each_log_is_written_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = Server(home, "--backup-interval", "0")
    try:
        code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
        srv.client.submit(manifest("once", [sys.executable, "-c", code]))
        wait_until(lambda: srv.client.get("once").phase.is_terminal(), "the job to end")
        adir = home / "runs" / "default__once" / "attempt-0"
        logs = sorted(p.name for p in adir.iterdir() if not p.name.endswith((".json", ".shim.log")))
        assert logs == ["rank-0.log"]
        text = srv.client.logs("once")
        assert "to stdout" in text and "to stderr" in text
    finally:
        srv.stop()
