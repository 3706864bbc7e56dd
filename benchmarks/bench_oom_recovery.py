"""OOM recovery on real processes: jobsched against three retry policies, side by side in one run.

Real jobs in real memory cgroups (the local backend's shim), not a simulation:
plateauing Python programs, PyTorch training of the estimator zoo run as plain commands (no
factory, so nothing can be estimated before they run), leaking programs and spiky programs.

1. Each job's true peak is measured first, in a cgroup with no limit.
2. Each job is declared at a fraction of that peak (0.1x .. 1.5x, by job) and run under:
   * ``static``   retry at the declared size (restartPolicy: OnFailure, an Argo retry);
   * ``vpa``      after an OOM, ``max(limit x 1.2, limit + 100Mi)`` (the VPA's OOM bump);
   * ``argo``     after an OOM, double the limit (a common Argo ``retryStrategy`` + podSpecPatch);
   * ``jobsched`` the real embedded server: timeline, measuring retry, leak detection.
   Every policy gets at most 6 attempts and the same node (8Gi); the baselines run through the
   same local backend (shim, cgroups) as jobsched.
3. Per policy: OOM kills per job (median, max over the jobs that are under-declared and do not
   leak), attempts, jobs that succeeded, time to success, wasted memory-seconds (requested memory
   held by attempts that failed, plus what the successful attempt requested and did not use), and
   the slack of the successful attempt ``(request - peak) / request`` (0 when it used more than it
   requested: a measuring retry bursting into free memory). For jobsched also the request the
   family's next run gets from the history (``peak x 1.15``).

    python benchmarks/bench_oom_recovery.py [--quick] [--jobs N] [--parallel 2] [-o out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobsched.backends.base import GangLaunch, ReplicaLaunch  # noqa: E402
from jobsched.backends.local.backend import LocalBackend  # noqa: E402
from jobsched.spec.resources import Resources  # noqa: E402

MIB = 2**20
NODE_MEMORY = 8 * 2**30
MAX_ATTEMPTS = 6
PY = sys.executable
HOG = str(ROOT / "benchmarks" / "programs" / "memhog.py")
ZOO = str(ROOT / "benchmarks" / "programs" / "zoo_train.py")
FACTORS = (0.1, 0.2, 0.33, 0.5, 0.7, 0.9, 1.2, 1.5)


@dataclass(frozen=True)
class Job:
    name: str
    argv: list[str]
    kind: str  # plateau | torch | leak | spike


def jobs(quick: bool) -> list[Job]:
    out = [Job(f"plateau-{mb}-{ramp}", [PY, HOG, "plateau", str(mb), "--ramp", str(ramp), "--hold", "1.5"],
               "plateau")
           for mb, ramp in ((300, 0.5), (500, 1.0), (700, 2.0), (900, 1.0), (1200, 3.0), (400, 0.3),
                            (1500, 2.0), (600, 4.0))]
    out += [Job(f"torch-{c}", [PY, ZOO, c, "--steps", "2"], "torch")
            for c in ("mlp-small-adam", "cnn-bn-adam-b64", "lstm-adam", "mlp-wide-adam", "logreg-sgd",
                      "gru-adamw")]
    out += [Job("torch-kernel-mlp", [PY, "-m", "workers.train", "--kernel", "mlp", "--steps", "20",
                                     "--checkpoint-dir", "none"], "torch")]
    out += [Job(f"spike-{b}-{p}", [PY, HOG, "spike", str(b), str(p), "--hold", "3"], "spike")
            for b, p in ((100, 600), (200, 900), (150, 1100))]
    out += [Job(f"leak-{r}", [PY, HOG, "leak", str(r)], "leak") for r in (300, 500)]
    return out[::3] if quick else out


@dataclass
class Attempt:
    request: int
    limit: int
    reason: str
    peak: int
    seconds: float


@dataclass
class Result:
    job: str
    kind: str
    policy: str
    true_peak: int
    declared: int
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = ""
    time_to_success: float | None = None
    next_request: int | None = None

    @property
    def kills(self) -> int:
        return sum(a.reason == "OOMKilled" for a in self.attempts)

    @property
    def wasted(self) -> float:
        w = 0.0
        for a in self.attempts:
            w += (a.request * a.seconds if a.reason != "Completed"
                  else max(a.request - min(a.peak, a.limit), 0) * a.seconds)
        return w / MIB  # MiB-seconds

    @property
    def slack(self) -> float | None:
        ok = [a for a in self.attempts if a.reason == "Completed"]
        return max(ok[-1].request - ok[-1].peak, 0) / ok[-1].request if ok else None


# -- the local backend, driven directly (true peaks and the three baselines) -------------------------
class Runner:
    def __init__(self, home: Path) -> None:
        self.backend = LocalBackend(home, nodes_config=[{"name": "box", "cpu": 64, "memory": NODE_MEMORY}])
        self.lock = threading.Lock()
        self.results: dict[tuple[str, int], dict] = {}

    def run(self, job: Job, limit: int | None, request: int) -> tuple[str, int, float]:
        key = f"bench/{job.name}-{uuid.uuid4().hex[:6]}"
        env = {"PATH": f"{Path(PY).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "JOBSCHED_ATTEMPT": "0",
               "JOBSCHED_CHECKPOINT_DIR": tempfile.mkdtemp(), "OMP_NUM_THREADS": "1"}
        rep = ReplicaLaunch(0, "box", job.argv, env, Resources(100, request), limit, working_dir=str(ROOT))
        gang = GangLaunch(key, uuid.uuid4().hex, 0, [rep])
        t0 = time.monotonic()
        with self.lock:
            self.backend.start(gang)
        while True:
            with self.lock:
                for ev in self.backend.poll():
                    if ev.kind == "exited":
                        self.results[(ev.job_key, ev.attempt)] = {"reason": ev.reason, "peak": ev.peak_memory_bytes}
                got = self.results.pop((key, 0), None)
            if got is not None:
                return str(got["reason"]), int(got["peak"] or 0), time.monotonic() - t0
            time.sleep(0.1)


def next_limit(policy: str, limit: int) -> int:
    if policy == "static":
        return limit
    if policy == "vpa":
        return max(int(limit * 1.2), limit + 100 * MIB)
    return limit * 2  # argo


def run_baseline(runner: Runner, policy: str, job: Job, declared: int, true_peak: int) -> Result:
    res = Result(job.name, job.kind, policy, true_peak, declared)
    limit = declared
    t0 = time.monotonic()
    for _ in range(MAX_ATTEMPTS):
        reason, peak, secs = runner.run(job, limit, limit)
        res.attempts.append(Attempt(limit, limit, reason, peak, secs))
        if reason == "Completed":
            res.outcome, res.time_to_success = "Succeeded", time.monotonic() - t0
            return res
        if reason != "OOMKilled":
            res.outcome = f"Failed ({reason})"
            return res
        if limit >= NODE_MEMORY:
            res.outcome = "Failed (cap)"
            return res
        limit = min(next_limit(policy, limit), NODE_MEMORY)
    res.outcome = "Failed (retries)"
    return res


# -- jobsched: the real embedded server -------------------------------------------------------------
def run_jobsched(rt, job: Job, declared: int, true_peak: int) -> Result:
    from tests.integration.helpers import manifest, wait_for

    name = f"{job.name.replace('.', 'p')}-{uuid.uuid4().hex[:4]}"
    m = manifest(name, job.argv, memory=str(declared), maxRetries=MAX_ATTEMPTS - 1, cpu="100m")
    m["spec"]["template"]["workingDir"] = str(ROOT)
    m["spec"]["template"]["env"] = {"OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    rt.service.submit(m)
    st = wait_for(rt.service, name, timeout=1800)
    res = Result(job.name, job.kind, "jobsched", true_peak, declared)
    for a in st.attempts:
        secs = (a.finished_at or 0) - (a.started_at or 0)
        res.attempts.append(Attempt(a.resources.requests.get("memory", 0), a.resources.limits.get("memory", 0),
                                    a.reason or "", a.peak_memory_bytes or 0, secs))
    res.outcome = st.phase.value + (f" ({st.reason})" if st.phase.value != "Succeeded" else "")
    if st.phase.value == "Succeeded":
        res.time_to_success = time.monotonic() - t0
        res.next_request = round(res.attempts[-1].peak * 1.15 / MIB) * MIB
    return res


def summarize(results: list[Result]) -> list[dict]:
    rows = []
    for policy in ("static", "vpa", "argo", "jobsched"):
        rs = [r for r in results if r.policy == policy]
        under = [r for r in rs if r.kind != "leak" and r.true_peak >= 1.2 * r.declared]
        ok = [r for r in rs if r.outcome == "Succeeded"]
        slack = [r.slack for r in ok if r.slack is not None]
        nxt = [(r.next_request - r.attempts[-1].peak) / r.next_request for r in ok if r.next_request]
        leaks = [r for r in rs if r.kind == "leak"]
        rows.append({
            "policy": policy, "jobs": len(rs), "succeeded": len(ok),
            "kills_median": statistics.median([r.kills for r in under]) if under else 0,
            "kills_max": max((r.kills for r in under), default=0),
            "attempts_mean": round(statistics.mean([len(r.attempts) for r in rs]), 2),
            "time_to_success_median_s": round(statistics.median([r.time_to_success for r in ok]), 1) if ok else None,
            "wasted_gib_s": round(sum(r.wasted for r in rs) / 1024, 1),
            "slack_median": round(statistics.median(slack), 3) if slack else None,
            "next_run_slack_median": round(statistics.median(nxt), 3) if nxt else None,
            "leak_attempts": [len(r.attempts) for r in leaks], "leak_outcomes": [r.outcome for r in leaks],
        })
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every third job only")
    ap.add_argument("--parallel", type=int, default=2, help="jobs run at once per policy")
    ap.add_argument("-o", "--output", type=Path, default=None, help="write all results as JSON")
    a = ap.parse_args()
    todo = jobs(a.quick)
    home = Path(tempfile.mkdtemp(prefix="bench-oom-"))
    runner = Runner(home / "baselines")
    if runner.backend.enforcement() == "watchdog":
        print("needs a memory cgroup (v1 or v2); found none", file=sys.stderr)
        return 2
    print(f"{len(todo)} jobs, {a.parallel} at a time; measuring true peaks (no limit)...", file=sys.stderr)
    with ThreadPoolExecutor(a.parallel) as pool:
        peaks = dict(zip([j.name for j in todo], pool.map(
            lambda j: (runner.run(j, None, 0) if j.kind != "leak" else ("Completed", 0, 0.0))[1], todo),
            strict=True))
    for i, j in enumerate(todo):  # a leak has no true peak: declare it at 256Mi
        if j.kind == "leak":
            peaks[j.name] = int(256 * MIB / FACTORS[i % len(FACTORS)])
    declared = {j.name: max(int(peaks[j.name] * FACTORS[i % len(FACTORS)]) // MIB * MIB, 64 * MIB)
                for i, j in enumerate(todo)}
    results: list[Result] = []
    for policy in ("static", "vpa", "argo"):
        t0 = time.monotonic()
        with ThreadPoolExecutor(a.parallel) as pool:
            results += pool.map(lambda j, p=policy: run_baseline(runner, p, j, declared[j.name], peaks[j.name]),
                                todo)
        print(f"{policy}: done in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    from jobsched.server.runtime import Runtime

    rt = Runtime(home / "jobsched", backend_options={"nodes_config": [
        {"name": "box", "cpu": 64, "memory": NODE_MEMORY}]})
    rt.start()
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(a.parallel) as pool:
            results += pool.map(lambda j: run_jobsched(rt, j, declared[j.name], peaks[j.name]), todo)
        print(f"jobsched: done in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    finally:
        rt.stop()
    rows = summarize(results)
    print("\n| policy | succeeded | OOM kills median / max | attempts (mean) | time to success (median) "
          "| wasted GiB·s | slack (median) | next-run slack | leaks: attempts, outcome |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['policy']} | {r['succeeded']}/{r['jobs']} | {r['kills_median']:g} / {r['kills_max']} | "
              f"{r['attempts_mean']} | {r['time_to_success_median_s']} s | {r['wasted_gib_s']} | "
              f"{r['slack_median']} | {r['next_run_slack_median'] if r['next_run_slack_median'] is not None else '-'}"
              f" | {r['leak_attempts']} {r['leak_outcomes']} |")
    print("\nper job (kills per policy: static/vpa/argo/jobsched):")
    for j in todo:
        ks = [next(r for r in results if r.job == j.name and r.policy == p) for p in ("static", "vpa", "argo",
                                                                                        "jobsched")]
        print(f"  {j.name:<28} peak {peaks[j.name] / MIB:7.0f}Mi declared {declared[j.name] / MIB:6.0f}Mi  "
              + "  ".join(f"{r.kills}k/{len(r.attempts)}a {r.outcome[:9]}" for r in ks))
    if a.output:
        a.output.write_text(json.dumps({"summary": rows, "results": [
            {**asdict(r), "kills": r.kills, "wasted_mib_s": r.wasted, "slack": r.slack} for r in results]},
            indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
