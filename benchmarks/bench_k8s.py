"""Kubernetes scheduling throughput on one test control plane (etcd + kube-apiserver + KWOK):
jobsched (KubernetesBackend via Runtime, N single-replica jobs) and kube-scheduler of the same
release (.cache/k8s-testenv/bin/kube-scheduler, pods with schedulerName default-scheduler), side by
side with 1,000 and 5,000 KWOK nodes, plus the time to bind a 64-replica gang with jobsched.

    python benchmarks/bench_k8s.py [--nodes 1000 5000] [--pods 1000] [--gang 64] [--gang-trials 3]
                                   [--ks-qps 50 1000] [--profile DIR]

Nodes are created concurrently through the API (KwokProvider); the script reports how long that
takes and how long until KWOK reports them Ready. Each scheduler is fed as fast as one client can:
jobsched by ``JobService.submit`` from 16 threads in its own process (as the HTTP server would
serve 16 clients), kube-scheduler by pod creates from 16 threads; a raw watch (httpx) in this process records when each pod is bound.
Latency: jobsched, submit -> pod bound; kube-scheduler, pod create -> pod bound. kube-scheduler runs
with its default client QPS (50, burst 100) and with the QPS given by --ks-qps. Writes
benchmarks/out/k8s.json.

API writes per job: a counting wrapper around the jobsched process's REST client counts every
POST/PUT/PATCH/DELETE it sends (by kind: pod create, binding, TrainingJob create, status patch, ...)
from the first submit of the 1,000 until the writes settle (no new write for 3 s, after all are
bound), divided by the number of jobs. --profile DIR samples the jobsched process with py-spy
(when installed) while the jobs bind, and prints the functions with the most samples (GIL held).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTENV = ROOT / "tools" / "k8s-testenv" / "testenv.sh"
BIN = ROOT / ".cache" / "k8s-testenv" / "bin"
NS = "default"
POOL = {"name": "bench", "instanceTypes": [{"name": "kwok-8x32", "cpu": 8, "memory": "32Gi", "pricePerHour": 0.4,
                                            "maxCount": 100_000}]}


class BindWatch:
    """Records, client side, when each pod of a label selector is first seen bound."""

    def __init__(self, kubeconfig: Path, selector: str, prefix: str = "") -> None:
        import ssl

        import httpx

        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        self.url = f"{cluster['server']}/api/v1/namespaces/{NS}/pods"
        tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
        self.client = httpx.Client(verify=tls, timeout=None)
        self.selector, self.prefix = selector, prefix
        self.bound: dict[str, float] = {}
        self.node_of: dict[str, str] = {}
        self._stop = False
        rv = self.client.get(self.url, params={"labelSelector": selector, "limit": 1}).json()["metadata"]
        self._thread = threading.Thread(target=self._run, args=(rv["resourceVersion"],), daemon=True)
        self._thread.start()

    def _run(self, rv: str) -> None:
        while not self._stop:
            try:
                rv = self._watch(rv)
            except Exception as e:  # a broken or expired watch: catch up from a list, watch again
                print(f"bind watch: {type(e).__name__}: {e}; relisting", file=sys.stderr, flush=True)
                listed = self.client.get(self.url, params={"labelSelector": self.selector}).json()
                for obj in listed["items"]:
                    self._seen(obj)
                rv = listed["metadata"]["resourceVersion"]

    def _watch(self, rv: str) -> str:
        params = {"watch": "1", "labelSelector": self.selector, "resourceVersion": rv, "timeoutSeconds": "900",
                  "allowWatchBookmarks": "true"}
        with self.client.stream("GET", self.url, params=params) as resp:
            for line in resp.iter_lines():
                if self._stop:
                    break
                if not line:
                    continue
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    raise RuntimeError(ev["object"].get("message"))
                rv = ev["object"]["metadata"]["resourceVersion"]
                if ev["type"] != "BOOKMARK":
                    self._seen(ev["object"])
        return rv

    def _seen(self, obj: dict[str, Any]) -> None:
        node = obj.get("spec", {}).get("nodeName")
        name = obj["metadata"]["name"]
        if node and name not in self.bound and name.startswith(self.prefix):
            self.bound[name] = time.time()
            self.node_of[name] = node

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.bound) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.bound) >= n

    def close(self) -> None:
        self._stop = True  # the thread ends at the next event (or the watch timeout); daemon


def summarize(start: dict[str, float], bound: dict[str, float], key: Any = None) -> dict[str, float]:
    key = key or (lambda name: name)
    lat = np.asarray([bound[p] - start[key(p)] for p in bound if key(p) in start])
    first, last = min(start.values()), max(bound.values())
    fed = max(start.values()) - first
    return {"pods": int(len(lat)), "bound_per_s": len(lat) / max(last - first, 1e-9),
            "fed_per_s": len(start) / max(fed, 1e-9),
            "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3)}


# jobsched in its own process --------------------------------------------------------------------
def job_manifest(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {
                "command": ["python", "-m", "workers.train"], "image": "jobsched/worker:dev",
                "nodeSelector": {"jobsched.io/node-pool": "bench"},
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}}


WRITE_KINDS = [("binding", re.compile(r"/pods/[^/]+/binding$")), ("pod status", re.compile(r"/pods/[^/]+/status$")),
               ("pod", re.compile(r"/pods(/[^/]+)?$")), ("trainingjob status", re.compile(r"/trainingjobs/[^/]+/status$")),
               ("trainingjob", re.compile(r"/trainingjobs(/[^/]+)?$")), ("lease", re.compile(r"/leases(/|$)")),
               ("event", re.compile(r"/events(/|$)"))]


class WriteCounter:
    """Counts the writes (POST/PUT/PATCH/DELETE) one REST client sends, by method and kind."""

    def __init__(self, rest_client: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.last = time.monotonic()
        inner = rest_client.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                path = url.split("?", 1)[0]
                kind = next((k for k, rx in WRITE_KINDS if rx.search(path)), path.rsplit("/", 2)[-2])
                self.counts[f"{method} {kind}"] += 1
                if kind != "lease":  # the leader's lease renewals never stop
                    self.last = time.monotonic()
            return inner(method, url, *args, **kwargs)

        rest_client.request = request

    def settle(self, quiet: float = 3.0, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last < quiet and time.monotonic() < deadline:
            time.sleep(0.2)


def _submit(rt: Any, name: str, replicas: int, times: dict[str, float]) -> None:
    times[name] = time.time()
    rt.service.submit(job_manifest(name, replicas))


def _jobsched_child(kubeconfig: str, home: str, nodes: int, conn: Any, extra: dict[str, Any] | None = None) -> None:
    import logging

    from jobsched.server.runtime import Runtime

    logging.basicConfig(level=logging.WARNING)
    rt = Runtime(home, backend="kubernetes", backend_options={"kubeconfig": kubeconfig,
                                                              "lease_name": f"bench-{uuid.uuid4().hex[:6]}",
                                                              **(extra or {})})
    writes = WriteCounter(rt.backend.api_client.rest_client)
    rt.start()
    while not (rt.backend.is_leader() and len(rt.backend.nodes_inf.cache) >= nodes):
        time.sleep(0.1)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            break
        if msg[0] == "writes":  # ("writes", reset): settle, report, optionally start over
            writes.settle()
            limiter = getattr(getattr(rt.backend, "writer", None), "limiter", None)  # None: before the limiter
            conn.send({"counts": dict(writes.counts), "limiter_wait_s": limiter.waited if limiter else 0.0})
            if limiter is not None:
                limiter.waited = 0.0
            if msg[1]:
                writes.counts.clear()
            continue
        _, names, replicas = msg
        times: dict[str, float] = {}

        with ThreadPoolExecutor(16) as ex:  # as many feeders as kube-scheduler gets (HTTP requests)
            list(ex.map(_submit, [rt] * len(names), names, [replicas] * len(names), [times] * len(names)))
        conn.send(times)
    rt.stop()
    conn.send("stopped")


def profile(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("--profile: py-spy not installed, no profile", file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "50", "--gil", "--nonblocking",
                             "--format", "raw", "--output", str(out / "jobsched.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short(frame: str) -> str:
    """'fn (/long/path/site-packages/pkg/mod.py:12)' -> 'fn (pkg/mod.py)'."""
    frame = re.sub(r":\d+\)$", ")", frame)
    return re.sub(r" \(.*?/(?:site-packages|lib/python3\.\d+)/", " (", frame)


def top_frames(raw: Path, n: int = 15) -> list[tuple[str, float]]:
    """py-spy raw (collapsed) stacks: the share of samples per innermost frame of our code or deps."""
    self_t: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        self_t[_short(frames[-1])] += int(count)
    return [(k, v / max(total, 1)) for k, v in self_t.most_common(n)]


def run_jobsched(kubeconfig: Path, nodes: int, pods: int, gang: int, trials: int, tag: str,
                 prof_dir: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    home = tempfile.mkdtemp(prefix="bench-k8s-js-")
    proc = ctx.Process(target=_jobsched_child, args=(str(kubeconfig), home, nodes, child, extra), daemon=True)
    proc.start()
    try:
        if not parent.poll(300):
            raise RuntimeError("jobsched did not become leader / sync nodes within 300s")
        parent.recv()
        w = BindWatch(kubeconfig, "jobsched.io/job", f"warm-{tag}-")  # warm-up: one job end to end
        parent.send(("submit", [f"warm-{tag}"], 1))
        parent.recv()
        w.wait(1, 60)
        w.close()
        parent.send(("writes", True))
        parent.recv()
        w = BindWatch(kubeconfig, "jobsched.io/job", f"js-{tag}-")
        names = [f"js-{tag}-{i}" for i in range(pods)]
        spy = profile(proc.pid, prof_dir) if prof_dir is not None and proc.pid else None
        parent.send(("submit", names, 1))
        start = parent.recv()
        ok = w.wait(pods, 600)
        if spy is not None:
            os.kill(spy.pid, 2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        w.close()
        job_of = lambda pod: pod.rsplit("-a0-", 1)[0]  # noqa: E731
        single = summarize(start, {p: v for p, v in w.bound.items() if job_of(p) in start}, job_of)
        single["complete"] = ok
        parent.send(("writes", True))
        got = parent.recv()
        counts = got["counts"]
        single["writes"] = counts
        single["rate_limiter_wait_s"] = got["limiter_wait_s"]  # summed over the writing threads
        single["writes_per_job"] = sum(counts.values()) / max(pods, 1)
        if prof_dir is not None and (prof_dir / "jobsched.txt").exists():
            single["profile_top"] = top_frames(prof_dir / "jobsched.txt")
        gangs = []
        for i in range(trials):
            name = f"gang-{tag}-{i}"
            w = BindWatch(kubeconfig, "jobsched.io/job", f"{name}-a0-")
            parent.send(("submit", [name], gang))
            t0 = parent.recv()[name]
            ok = w.wait(gang, 300)
            w.close()
            mine = list(w.bound.values())
            gangs.append({"all_bound_s": max(mine) - t0 if ok else None,
                          "first_bound_s": min(mine) - t0 if mine else None, "nodes": len(set(w.node_of.values()))})
        parent.send(("stop",))
        parent.recv()
        return {"single": single, "gang": gangs}
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


# kube-scheduler -----------------------------------------------------------------------------------
def start_kube_scheduler(workdir: Path, kubeconfig: Path, qps: int | None) -> subprocess.Popen[bytes]:
    args = [str(BIN / "kube-scheduler"), "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=0"]
    if qps is None:
        args.append(f"--kubeconfig={kubeconfig}")
    else:
        cfg = workdir / f"ks-qps{qps}.yaml"
        cfg.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
            "leaderElection": {"leaderElect": False},
            "clientConnection": {"kubeconfig": str(kubeconfig), "qps": qps, "burst": qps * 2}}))
        args.append(f"--config={cfg}")
    log = open(workdir / f"kube-scheduler-{qps}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def pod_body(name: str, tag: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": tag}},
            "spec": {"schedulerName": "default-scheduler", "restartPolicy": "Never",
                     "nodeSelector": {"jobsched.io/node-pool": "bench"},
                     "containers": [{"name": "c", "image": "jobsched/worker:dev",
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}


def run_kube_scheduler(core: Any, workdir: Path, kubeconfig: Path, pods: int, qps: int | None,
                       tag: str) -> dict[str, Any]:
    proc = start_kube_scheduler(workdir, kubeconfig, qps)
    try:
        warm = BindWatch(kubeconfig, f"bench=warm-{tag}")
        core.create_namespaced_pod(NS, pod_body(f"warm-{tag}", f"warm-{tag}"))
        if not warm.wait(1, 300):
            raise RuntimeError(f"kube-scheduler bound nothing in 300s (log {workdir})")
        warm.close()
        w = BindWatch(kubeconfig, f"bench={tag}", f"ks-{tag}-")
        start: dict[str, float] = {}

        def create(name: str) -> None:
            start[name] = time.time()
            core.create_namespaced_pod(NS, pod_body(name, tag))

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(create, [f"ks-{tag}-{i}" for i in range(pods)]))
        ok = w.wait(pods, 600)
        w.close()
        out = summarize(start, dict(w.bound))
        out["complete"] = ok
        return out
    finally:
        proc.terminate()
        proc.wait(10)


# nodes --------------------------------------------------------------------------------------------
def grow_nodes(api: Any, prov: Any, total: int) -> dict[str, float]:
    from kubernetes import client

    have = sum(prov.counts().values())
    t0 = time.perf_counter()
    prov.create("kwok-8x32", total - have)
    created = time.perf_counter() - t0
    core = client.CoreV1Api(api)
    while True:
        items = core.list_node(label_selector=prov.selector, resource_version="0").items
        ready = sum(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []) for n in items)
        if ready >= total:
            break
        time.sleep(0.5)
    return {"added": total - have, "create_s": created, "ready_s": time.perf_counter() - t0}


def clear_pods(core: Any) -> None:
    for sel in ("jobsched.io/job", "bench"):
        core.delete_collection_namespaced_pod(NS, label_selector=sel, grace_period_seconds=0)
    while core.list_namespaced_pod(NS, limit=1).items:
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    from kubernetes import client, config

    from jobsched.backends.kubernetes.providers import KwokProvider
    from jobsched.rightsizing.pools import NodePool

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--pods", type=int, default=1000)  # bounded: jobsched binds ~15-20 jobs/s on 2 cores
    ap.add_argument("--gang", type=int, default=64)
    ap.add_argument("--gang-trials", type=int, default=3)
    ap.add_argument("--ks-qps", type=int, nargs="*", default=[1000], help="extra kube-scheduler runs with this QPS")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "k8s.json")
    ap.add_argument("--backend-option", action="append", default=[], metavar="KEY=JSON",
                    help="a KubernetesBackend option for jobsched, e.g. record_events=false or qps=200")
    ap.add_argument("--profile", type=Path, default=None, help="sample jobsched with py-spy into this folder")
    args = ap.parse_args(argv)
    if not (BIN / "kube-apiserver").exists():
        print("build the control plane first: tools/k8s-testenv/testenv.sh build", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    subprocess.run([str(TESTENV), "start", str(workdir)], check=True)
    kubeconfig = workdir / "kubeconfig"
    results: dict[str, Any] = {"pods": args.pods, "gang": args.gang, "rounds": []}
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        api.configuration.connection_pool_maxsize = 32
        core = client.CoreV1Api(api)
        from kubernetes import utils

        for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
            utils.create_from_yaml(api, str(f))
        prov = KwokProvider(api, NodePool.model_validate(POOL), workers=32)
        options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.backend_option)}
        for n in sorted(args.nodes):
            rnd: dict[str, Any] = {"nodes": n, "node_creation": grow_nodes(api, prov, n)}
            print(f"[{n} nodes] created {rnd['node_creation']}", flush=True)
            rnd["jobsched"] = run_jobsched(kubeconfig, n, args.pods, args.gang, args.gang_trials, f"n{n}",
                                           args.profile / f"n{n}" if args.profile else None, options)
            print(f"[{n} nodes] jobsched {rnd['jobsched']}", flush=True)
            clear_pods(core)
            for qps in [None, *args.ks_qps]:
                r = run_kube_scheduler(core, workdir, kubeconfig, args.pods, qps, f"n{n}-q{qps or 'default'}")
                rnd[f"kube-scheduler qps={qps or 'default(50)'}"] = r
                print(f"[{n} nodes] kube-scheduler qps={qps or 'default'} {r}", flush=True)
                clear_pods(core)
            results["rounds"].append(rnd)
    finally:
        subprocess.run([str(TESTENV), "stop", str(workdir)], check=False)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['pods']} single-pod jobs/pods per scheduler; 2-core CPU shared, no GPU\n")
    print(f"{'nodes':>6} {'scheduler':<28} {'bound/s':>8} {'fed/s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results["rounds"]:
        for k in ["jobsched", *[k for k in r if k.startswith("kube-scheduler")]]:
            s = r[k]["single"] if k == "jobsched" else r[k]
            print(f"{r['nodes']:>6} {k:<28} {s['bound_per_s']:>8.1f} {s['fed_per_s']:>7.1f} "
                  f"{s['p50_ms']:>8.0f} {s['p99_ms']:>8.0f}")
        js = r["jobsched"]["single"]["bound_per_s"]
        for k in [k for k in r if k.startswith("kube-scheduler")]:
            print(f"{'':>6} ratio jobsched / {k}: {js / r[k]['bound_per_s']:.2f}")
        nc = r["node_creation"]
        print(f"{'':>6} node creation: {nc['added']} nodes created in {nc['create_s']:.1f}s, all Ready after "
              f"{nc['ready_s']:.1f}s")
        js1 = r["jobsched"]["single"]
        if "writes" in js1:
            print(f"{'':>6} jobsched API writes per job: {js1['writes_per_job']:.2f} "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(js1['writes'].items()))}); "
                  f"client-side rate limit waits {js1.get('rate_limiter_wait_s', 0):.1f} s in all")
        for frame, share in js1.get("profile_top", [])[:10]:
            print(f"{'':>6} profile (GIL held) {share:6.1%} {frame}")
        g = [x["all_bound_s"] for x in r["jobsched"]["gang"]]
        print(f"{'':>6} {results['gang']}-replica gang, submit -> all bound: "
              + ", ".join(f"{x:.2f}s" if x is not None else "incomplete" for x in g))


if __name__ == "__main__":
    sys.exit(main())
