"""Snapshot tests of the CLI's tables: what a user sees for a fixed set of jobs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobsched.cli import output
from jobsched.spec.api import AttemptInfo, AttemptResources, EventInfo, JobStatus

MI = 2**20


def job(name: str, phase: str, attempts: list[dict[str, Any]], cost: float = 0.0, reason: str | None = None,
        age: float = 120) -> JobStatus:
    return JobStatus(name=name, phase=phase, reason=reason, cost=cost, created_at=time.time() - age,
                     attempts=[AttemptInfo(index=i, **a) for i, a in enumerate(attempts)])


def res(req: int, lim: int) -> AttemptResources:
    return AttemptResources(requests={"memory": req * MI, "cpu": 1000}, limits={"memory": lim * MI})


def make_jobs() -> list[JobStatus]:
    """Built in each test, with ages (2m30s, 1m30s) far from a unit's edge."""
    first = [{"resources": res(100, 100), "node": "local", "nodes": ["local"], "reason": "OOMKilled",
              "peak_memory_bytes": 100 * MI},
             {"resources": res(150, 150), "node": "local", "nodes": ["local"], "reason": "Completed"}]
    return [job("train-a", "Succeeded", first, cost=0.0123, reason="Completed", age=150),
            job("pending-b", "Pending", [], reason="QuotaExceeded", age=90)]


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln.rstrip() for ln in capsys.readouterr().out.splitlines()]


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    output.jobs_table(make_jobs())
    assert lines(capsys) == [
        "NAME       NAMESPACE  QUEUE    PHASE      ATTEMPTS  MEMORY  COST     AGE  REASON",
        "train-a    default    default  Succeeded  2         150Mi   $0.0123  2m   Completed",
        "pending-b  default    default  Pending    0         -       -        1m   QuotaExceeded",
    ]


def test_list_wide(capsys: pytest.CaptureFixture[str]) -> None:
    output.jobs_table(make_jobs(), wide=True)
    assert lines(capsys) == [
        "NAME       NAMESPACE  QUEUE    PHASE      ATTEMPTS  NODE   MEMORY REQUEST  MEMORY LIMIT  COST     AGE  REASON",
        "train-a    default    default  Succeeded  2         local  150Mi           150Mi         $0.0123  2m   Completed",
        "pending-b  default    default  Pending    0         -      -               -             -        1m   QuotaExceeded",
    ]


def test_fast_path_draws_the_same_table(capsys: pytest.CaptureFixture[str]) -> None:
    from jobsched.cli.listing import columns, plain_table, row

    jobs = make_jobs()
    for wide in (False, True):
        output.jobs_table(jobs, wide=wide)
        rich_text = capsys.readouterr().out
        now = time.time()
        plain = plain_table(columns(wide), [row(j.model_dump(mode="json"), wide, now) for j in jobs], color=False)
        assert [ln.rstrip() for ln in plain.splitlines()] == [ln.rstrip() for ln in rich_text.splitlines()]


def test_events_table_caps_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    long = ("replica 0 OOMKilled: memory limit 67108864 bytes exceeded (cgroup-v1) — stopping the gang; "
            "the next attempt asks for 96Mi (max(peak x 1.15, limit x 1.5))")
    evs = [EventInfo(time=time.time() - 5, type="Normal", reason="Submitted", message="queue default"),
           EventInfo(time=time.time() - 3, type="Warning", reason="OOMKilled", message=long)]
    output.console().print(output.events_table(evs))
    out = lines(capsys)
    assert out[0] == "Events"
    assert out[1].split() == ["AGE", "TYPE", "REASON", "MESSAGE"]
    assert max(len(ln) for ln in out) <= 3 + 2 + 7 + 2 + 9 + 2 + 72
    assert out[2].split()[1:] == ["Normal", "Submitted", "queue", "default"]
    assert out[3].startswith("3s   Warning  OOMKilled  replica 0 OOMKilled: memory limit")
    assert len(out) >= 5 and out[4].startswith(" " * 25)  # the message wraps in its own column
    assert "".join(ln[25:].strip() + " " for ln in out[3:]).split() == long.split()


def test_attempts_peak_above_limit_is_noted_and_chosen_is_the_last(capsys: pytest.CaptureFixture[str]) -> None:
    j = make_jobs()[0]
    j.attempts[0].peak_memory_bytes = 105 * MI  # the cgroup's peak passed the 100Mi limit (page cache)
    j.sizing.chosen_memory = 100 * MI  # stale: the resize after the OOM chose 150Mi
    output.job_detail(j)
    out = lines(capsys)
    assert "  memory (chosen) 150Mi" in out
    head = out.index("Attempts")
    assert out[head + 1].split() == ["ATTEMPT", "REQUEST", "LIMIT", "MODE", "PEAK", "NODE", "EXIT", "REASON"]
    assert out[head + 2].split() == ["0", "100Mi", "100Mi", "-", "105Mi", "(≥", "limit)", "local", "-", "OOMKilled"]
    assert out[head + 3].split() == ["1", "150Mi", "150Mi", "-", "-", "local", "-", "Completed"]


def test_nodes_table_shows_room_other_schedulers_hold(capsys: pytest.CaptureFixture[str]) -> None:
    from jobsched.cli.output import nodes_table
    from jobsched.spec.api import NodeStatus

    nodes_table([NodeStatus(name="n1", allocatable={"cpu": "8"}, allocated={"cpu": 1000},
                            held={"cpu": "7000m", "memory": 2**26, "nvidia.com/gpu": 0}),
                 NodeStatus(name="n2", allocatable={"cpu": "8"})])
    out = " ".join(capsys.readouterr().out.split())
    assert "cpu=1; held by others: cpu=7, memory=64Mi" in out and "held" not in out.split("n2")[1]
