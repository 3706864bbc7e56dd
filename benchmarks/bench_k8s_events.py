"""What the Kubernetes Events recorder (jobsched/backends/kubernetes/events.py) costs the scheduler:
jobsched binding N single-replica jobs on one test control plane with Events on and off,
alternating in the same run (so the figures compare), plus the Events written per job.

    python benchmarks/bench_k8s_events.py [--nodes 200] [--pods 300] [--rounds 2]

Uses bench_k8s.py's helpers (KWOK nodes through KwokProvider, a raw watch timing each bind).
Latency: submit -> pod bound.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_k8s import NS, POOL, TESTENV, BindWatch, clear_pods, grow_nodes, job_manifest, summarize  # noqa: E402


def _child(kubeconfig: str, home: str, nodes: int, events: bool, conn: Any) -> None:
    import logging

    from jobsched.server.runtime import Runtime

    logging.basicConfig(level=logging.WARNING)
    rt = Runtime(home, backend="kubernetes", backend_options={
        "kubeconfig": kubeconfig, "lease_name": f"bench-{uuid.uuid4().hex[:6]}", "record_events": events})
    rt.start()
    while not (rt.backend.is_leader() and len(rt.backend.nodes_inf.cache) >= nodes):
        time.sleep(0.1)
    conn.send("ready")
    msg = conn.recv()
    times: dict[str, float] = {}
    for name in msg:
        times[name] = time.time()
        rt.service.submit(job_manifest(name, 1))
    conn.send(times)
    conn.recv()  # all bound: give the recorder time to catch up, then count
    rec = getattr(rt.backend, "recorder", None)
    deadline = time.time() + 120
    while rec is not None and time.time() < deadline and rec.store.events_since(rec._last, 1):
        time.sleep(0.5)
    time.sleep(2)
    conn.send(rec.written if rec is not None else 0)
    rt.stop()


def run(kubeconfig: Path, nodes: int, pods: int, events: bool, tag: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    home = tempfile.mkdtemp(prefix="bench-k8s-ev-")
    proc = ctx.Process(target=_child, args=(str(kubeconfig), home, nodes, events, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(300):
            raise RuntimeError("jobsched did not become leader / sync nodes within 300s")
        parent.recv()
        w = BindWatch(kubeconfig, "jobsched.io/job", f"ev-{tag}-")
        names = [f"ev-{tag}-{i}" for i in range(pods)]
        parent.send(names)
        start = parent.recv()
        ok = w.wait(pods, 600)
        w.close()
        out = summarize(start, {p: v for p, v in w.bound.items() if p.rsplit("-a0-", 1)[0] in start},
                        lambda pod: pod.rsplit("-a0-", 1)[0])
        parent.send("count")
        out.update(complete=ok, events=events, events_written=parent.recv())
        return out
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from kubernetes import client, config, utils

    from jobsched.backends.kubernetes.providers import KwokProvider
    from jobsched.rightsizing.pools import NodePool

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--pods", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-k8s-ev-"))
    subprocess.run([str(TESTENV), "start", str(workdir)], check=True)
    kubeconfig = workdir / "kubeconfig"
    rows = []
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
            utils.create_from_yaml(api, str(f))
        grow_nodes(api, KwokProvider(api, NodePool.model_validate(POOL), workers=32), args.nodes)
        for r in range(args.rounds):
            for events in (True, False) if r % 2 == 0 else (False, True):
                res = run(kubeconfig, args.nodes, args.pods, events, f"r{r}{'e' if events else 'n'}")
                rows.append(res)
                print(res, flush=True)
                # Each run starts clean: a later run would import the earlier runs' TrainingJob CRs.
                custom.delete_collection_namespaced_custom_object("jobsched.io", "v1alpha1", NS, "trainingjobs")
                clear_pods(core)
                core.delete_collection_namespaced_event(NS)
    finally:
        subprocess.run([str(TESTENV), "stop", str(workdir)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.nodes} KWOK nodes, {args.pods} single-replica jobs per run, runs alternating")
    print("| Events | bound/s | p50 ms | p99 ms | Events written per job |\n|---|---:|---:|---:|---:|")
    for res in rows:
        print(f"| {'on' if res['events'] else 'off'} | {res['bound_per_s']:.1f} | {res['p50_ms']:.0f} | "
              f"{res['p99_ms']:.0f} | {res['events_written'] / max(res['pods'], 1):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
