"""`jobsched delete`, `submit/run --dry-run` and `metadata.generateName` against a real server."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.sdk.client import Client

SLEEP = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def counts(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "state.db") as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("jobs", "attempts", "events", "timelines")}


def test_delete_running_job_removes_everything(live: Any) -> None:
    home = Path(live.home)
    c = Client()
    assert cli("run", "--name", "doomed", "--memory", "64Mi", "--", *SLEEP).exit_code == 0
    chunks = c.logs("doomed", follow=True)
    assert "up" in next(chunks)  # running, with a log file and a checkpoint directory
    assert (home / "runs" / "default__doomed").is_dir()
    assert (home / "checkpoints" / "default" / "doomed").is_dir()
    assert cli("run", "--name", "other", "--memory", "64Mi", "--", sys.executable, "-c", "pass").exit_code == 0
    r = cli("delete", "doomed")
    assert r.exit_code == 0 and "default/doomed deleted (was Cancelled)" in r.stdout, r.output
    assert not (home / "runs" / "default__doomed").exists()
    assert not (home / "checkpoints" / "default" / "doomed").exists()
    left = counts(home)
    assert left["jobs"] == 1 and [j.name for j in c.list()] == ["other"]
    with sqlite3.connect(home / "state.db") as db:
        uids = {r[0] for r in db.execute("SELECT job_uid FROM events UNION SELECT job_uid FROM attempts")}
        assert uids <= {r[0] for r in db.execute("SELECT uid FROM jobs")}  # nothing of doomed is left
    r = cli("delete", "doomed")
    assert r.exit_code == 2 and "not found" in r.stderr
    # the name is free again
    assert cli("run", "--name", "doomed", "--memory", "64Mi", "--", sys.executable, "-c", "pass").exit_code == 0


def test_delete_keeps_a_named_checkpoint_dir(live: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "mine"
    ckpt.mkdir()
    (ckpt / "step-1.pt").write_text("x")
    m = {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "keep"},
         "spec": {"checkpointDir": str(ckpt), "template": {"command": [sys.executable, "-c", "pass"],
                                                         "resources": {"requests": {"memory": "64Mi"}}}}}
    c = Client()
    c.submit(m)
    c.wait("keep", timeout=60)
    r = cli("delete", "keep")
    assert r.exit_code == 0 and f"kept your checkpointDir {ckpt}" in r.stdout
    assert (ckpt / "step-1.pt").exists()


def test_dry_run_stores_nothing_and_reports(live: Any, tmp_path: Path) -> None:
    home = Path(live.home)
    before = counts(home)
    r = cli("run", "--dry-run", "--name", "dry", "--memory", "100Mi", "--", sys.executable, "-c", "pass")
    assert r.exit_code == 0, r.output
    assert "100Mi per replica" in r.stdout and "declared" in r.stdout and "would start now on" in r.stdout
    r = cli("run", "--dry-run", "--name", "huge", "--memory", "100Ti", "--", sys.executable, "-c", "pass")
    assert r.exit_code == 2 and "never fits" in r.stdout and "insufficient memory" in r.stdout
    # quota: a queue that allows 1Gi, asked for 2 replicas of 1Gi
    q = tmp_path / "q.yaml"
    q.write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\nmetadata: {name: small}\n"
                 "spec: {quota: {memory: 1Gi}, defaultMemory: 512Mi}\n")
    assert cli("queue", "apply", str(q)).exit_code == 0
    r = cli("run", "--dry-run", "-o", "json", "--queue", "small", "--replicas", "2", "--memory", "1Gi",
            "--", sys.executable, "-c", "pass")
    out = json.loads(r.stdout)
    assert r.exit_code == 2 and out["fits"] is False and "quota" in out["quota"]
    # Auto without a size: the queue default stands in; the estimator is said to be skipped
    r = cli("run", "--dry-run", "-o", "json", "--queue", "small", "--memory-policy", "Auto",
            "--factory", "model:make", "--", sys.executable, "-c", "pass")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["memory"] == 512 * 2**20 and "defaultMemory" in out["memoryReason"]
    assert any("estimate" in s for s in out["skipped"])
    # invalid input is still exit 2 naming the field
    r = cli("run", "--dry-run", "--queue", "nosuch", "--", "true")
    assert r.exit_code == 2 and "spec.queue" in r.stderr
    assert counts(home) == before


def test_generate_name_twice_gives_two_jobs(live: Any, tmp_path: Path) -> None:
    f = tmp_path / "gen.yaml"
    f.write_text("apiVersion: jobsched.io/v1alpha1\nkind: TrainingJob\nmetadata: {generateName: hello-}\n"
                 "spec:\n  template: {command: [echo, hi], resources: {requests: {memory: 64Mi}}}\n")
    a, b = Client().submit(f), Client().submit(f)
    assert a.name != b.name and a.name.startswith("hello-") and len(a.name) == len("hello-") + 5
    r = cli("submit", "--dry-run", str(f))
    assert r.exit_code == 0 and "hello-?????" in r.stdout and "name generated at submit" in r.stdout
    f.write_text("apiVersion: jobsched.io/v1alpha1\nkind: TrainingJob\nmetadata: {namespace: x}\n"
                 "spec:\n  template: {command: [echo, hi]}\n")
    r = cli("submit", str(f))
    assert r.exit_code == 2 and "metadata" in r.stderr and "generateName" in r.stderr


def test_quota_wait_has_reason_quota_exceeded(live: Any, tmp_path: Path) -> None:
    import time

    q = tmp_path / "q.yaml"
    q.write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\nmetadata: {name: tight}\n"
                 "spec: {quota: {memory: 100Mi}}\n")
    assert cli("queue", "apply", str(q)).exit_code == 0
    assert cli("run", "--name", "first", "--queue", "tight", "--memory", "64Mi", "--", *SLEEP).exit_code == 0
    assert cli("run", "--name", "second", "--queue", "tight", "--memory", "64Mi", "--", *SLEEP).exit_code == 0
    c = Client()
    deadline = time.monotonic() + 60
    while c.get("second").reason != "QuotaExceeded":
        assert time.monotonic() < deadline, c.get("second")
        time.sleep(0.1)
    st = c.get("second")
    assert st.phase.value == "Pending" and "quota exceeded for memory" in (st.message or "")
    r = cli("run", "--dry-run", "-o", "json", "--queue", "tight", "--memory", "64Mi", "--", "true")
    assert r.exit_code == 0 and "quota exceeded" in json.loads(r.stdout)["quota"]
    for name in ("second", "first"):
        assert cli("delete", name).exit_code == 0
