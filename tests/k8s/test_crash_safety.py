"""kill -9 of the jobsched server at 20 random points, against the real test control plane.

A real ``jobsched server --backend kubernetes`` process is SIGKILLed while two-replica gangs are
submitted, created and bound, then started again. A watch on the API server checks every state it
goes through: never two attempts of one job with live pods, no node given more requests by
jobsched's pods than it has allocatable. After each restart the pods left unbound at the kill are
deleted; at the end every job has completed exactly once.

The test plays the kubelet's workload: a pod that runs is given KWOK's outcome annotation
(``Succeeded`` two seconds later). The lease of the killed server is deleted with it (as if its 15 s
had passed), so that each restart takes over at once.
"""

from __future__ import annotations

import os
import random
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server_proc import Server

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(1200)]  # 20 restarts on a loaded machine
ROOT = Path(__file__).resolve().parents[2]
KILLS, JOBS = 20, 40
SEED = int(os.environ.get("KILL_TEST_SEED", "14"))  # another seed: other kill points
NODES, NODE_CPU, NODE_MEM = 4, 4000, 16 * 2**30
OUTCOME_ANNOTATION, OUTCOME_AFTER_ANNOTATION = "jobsched.io/kwok-outcome", "jobsched.io/kwok-outcome-after"


def install_crds(api: Any) -> None:
    from kubernetes import utils

    for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        try:
            utils.create_from_yaml(api, str(f))
        except utils.FailToCreateError as e:
            if not all(x.status == 409 for x in e.api_exceptions):
                raise


def manifest(name: str, pool: str) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"replicas": 2, "template": {
                "command": ["python", "-m", "workers.train"], "image": "jobsched/worker:dev",
                "nodeSelector": {"pool": pool}, "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}}}


class PodWatch:
    """Every state of jobsched's pods for our jobs, in the API server's order, checked as it comes."""

    def __init__(self, core: Any, prefix: str, nodes: set[str]) -> None:
        self.core, self.prefix, self.nodes = core, prefix, nodes
        self.pods: dict[str, Any] = {}
        self.succeeded: dict[str, set[tuple[int, str]]] = defaultdict(set)  # job -> {(attempt, pod uid)}
        self.violations: list[str] = []
        self.lock = threading.Lock()
        self.created, self.bound = threading.Event(), threading.Event()  # a pod of ours was created/bound
        self._stop = threading.Event()
        self._w: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._w is not None:
            self._w.stop()
        self.thread.join(timeout=30)

    def _ours(self, pod: Any) -> bool:
        return str((pod.metadata.labels or {}).get("jobsched.io/job", "")).startswith(self.prefix)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            self._w = watch.Watch()
            try:
                listed = self.core.list_namespaced_pod("default", label_selector="jobsched.io/job-uid")
                with self.lock:
                    self.pods = {p.metadata.uid: p for p in listed.items if self._ours(p)}
                    self._check("list")
                for ev in self._w.stream(self.core.list_namespaced_pod, "default", label_selector="jobsched.io/job-uid",
                                         resource_version=listed.metadata.resource_version, timeout_seconds=30):
                    pod = ev["object"]
                    if ev["type"] == "ERROR" or self._stop.is_set():
                        break
                    if not self._ours(pod):
                        continue
                    with self.lock:
                        before = self.pods.get(pod.metadata.uid)
                        if ev["type"] == "DELETED":
                            self.pods.pop(pod.metadata.uid, None)
                        else:
                            self.pods[pod.metadata.uid] = pod
                            if ev["type"] == "ADDED":
                                self.created.set()
                            if pod.spec.node_name and (before is None or not before.spec.node_name):
                                self.bound.set()
                        self._check(f"{ev['type']} {pod.metadata.name}")
                    self._finish_running(pod)
            except Exception:  # noqa: BLE001 - the stream broke: list again
                self._stop.wait(0.2)

    def _finish_running(self, pod: Any) -> None:
        ann = pod.metadata.annotations or {}
        if pod.status and pod.status.phase == "Running" and OUTCOME_ANNOTATION not in ann \
                and not pod.metadata.deletion_timestamp:
            try:
                self.core.patch_namespaced_pod(pod.metadata.name, "default", {"metadata": {"annotations": {
                    OUTCOME_ANNOTATION: "Succeeded", OUTCOME_AFTER_ANNOTATION: "2s"}}})
            except Exception:  # noqa: BLE001 - deleted meanwhile
                pass

    def _check(self, at: str) -> None:
        attempts: dict[str, set[str]] = defaultdict(set)
        used: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for p in self.pods.values():
            labels = p.metadata.labels
            job, att = labels["jobsched.io/job"], labels["jobsched.io/attempt"]
            if p.status and p.status.phase == "Succeeded":
                self.succeeded[job].add((int(att), p.metadata.uid))
            if p.status and p.status.phase in ("Succeeded", "Failed"):
                continue
            attempts[job].add(att)
            if p.spec.node_name:
                req = p.spec.containers[0].resources.requests
                used[p.spec.node_name][0] += int(req["cpu"].rstrip("m")) * (1 if req["cpu"].endswith("m") else 1000)
                used[p.spec.node_name][1] += int(req["memory"])
        for job, atts in attempts.items():
            if len(atts) > 1:
                self.violations.append(f"{at}: job {job} has live pods of attempts {sorted(atts)}")
        for node, (cpu, mem) in used.items():
            if node in self.nodes and (cpu > NODE_CPU or mem > NODE_MEM):
                self.violations.append(f"{at}: node {node} over-committed: cpu {cpu}m, memory {mem}")

    def unbound(self) -> set[str]:
        with self.lock:
            return {u for u, p in self.pods.items() if not p.spec.node_name}

    def present(self) -> set[str]:
        with self.lock:
            return set(self.pods)


def kill_point(rng: random.Random, watch: PodWatch) -> None:
    """Wait for a random point (seeded) over submit, pod creation, binding, and later."""
    phase = rng.choice(("submit", "create", "bind", "later"))
    if phase == "create":
        watch.created.wait(10)  # a pod was just created: its gang's other pods and binds are in flight
    elif phase == "bind":
        watch.bound.wait(10)  # a bind went through: the store has not recorded it yet
    threading.Event().wait({"submit": rng.uniform(0.0, 0.4), "later": rng.uniform(0.4, 2.5)}.get(
        phase, rng.uniform(0.0, 0.03)))


def _submit(server: Server, names: list[str], pool: str) -> None:
    for n in names:
        try:
            server.client.submit(manifest(n, pool))
        except Exception:  # noqa: BLE001 - killed mid-request, or already stored: checked later
            pass


def _missing(server: Server, names: list[str]) -> list[str]:
    out = []
    for n in names:
        try:
            server.client.get(n)
        except Exception:  # noqa: BLE001 - not found
            out.append(n)
    return out


def test_kill_at_random_points_never_runs_a_job_twice(k8s_cluster, tmp_path, wait_for):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = k8s_cluster.api_client()
    install_crds(api)
    core, coord = client.CoreV1Api(api), client.CoordinationV1Api(api)
    rng = random.Random(SEED)
    pool = f"ks{rng.getrandbits(24):06x}"
    nodes = set(k8s_cluster.add_nodes(NODES, cpu=str(NODE_CPU // 1000), memory="16Gi", labels={"pool": pool}))
    names = [f"{pool}-{i}" for i in range(JOBS)]
    watch = PodWatch(core, pool, nodes)
    watch.start()
    home, flags = tmp_path / "home", ("--backend", "kubernetes", "--kubeconfig", str(k8s_cluster.kubeconfig))
    outputs: list[Path] = []
    to_submit = list(names)
    left_unbound: set[str] = set()
    try:
        for kill in range(KILLS):
            server = Server(home, *flags)
            outputs.append(server.out)
            # The pods the last kill left unbound are deleted by the restarted server.
            wait_for(lambda gone=left_unbound: not (gone & watch.present()), 60, f"orphans of kill {kill} deleted")
            if kill and kill % 4 == 0:  # submissions a kill interrupted are made again (a client retry)
                to_submit += _missing(server, [n for n in names if n not in to_submit])
            batch, to_submit = to_submit[:2], to_submit[2:]
            watch.created.clear()
            watch.bound.clear()
            submitter = threading.Thread(target=_submit, args=(server, batch, pool), daemon=True)
            submitter.start()
            kill_point(rng, watch)
            server.kill9()
            submitter.join(timeout=30)
            # Read after the kill, from the API server (the watch may lag a bind just made).
            left_unbound = {p.metadata.uid for p in core.list_namespaced_pod("default").items
                            if str((p.metadata.labels or {}).get("jobsched.io/job", "")).startswith(pool)
                            and not p.spec.node_name}
            try:
                coord.delete_namespaced_lease("jobsched-scheduler", "default")
            except ApiException as e:
                if e.status != 404:
                    raise
            assert not watch.violations, watch.violations[:5]
        server = Server(home, *flags)
        outputs.append(server.out)
        try:
            wait_for(lambda: not (left_unbound & watch.present()), 60, "orphans of the last kill deleted")
            to_submit += _missing(server, [n for n in names if n not in to_submit])
            _submit(server, to_submit, pool)

            def all_done() -> bool:
                return all(server.client.get(n).phase.value == "Succeeded" for n in names)

            # Liveness after the last restart (safety is checked throughout): a job requeued by
            # several kills backs off between attempts, so on a loaded machine this can take minutes.
            wait_for(all_done, 600, "every job to succeed")
            statuses = {n: server.client.get(n) for n in names}
        finally:
            server.stop()
    finally:
        watch.stop()
    assert not watch.violations, watch.violations[:5]
    for n, st in statuses.items():
        completed = [a for a in st.attempts if a.reason == "Completed"]
        assert len(completed) == 1, (n, [(a.index, a.reason) for a in st.attempts])
        per_attempt: dict[int, int] = defaultdict(int)
        for att, _ in watch.succeeded[n]:
            per_attempt[att] += 1
        ran = [att for att, pods in per_attempt.items() if pods == 2]  # both replicas ran to the end
        assert ran == [completed[0].index], (n, dict(per_attempt))
        # A lone replica of a gang the kill left half-bound may have ended before its attempt was cleared.
        lone = {att for att, pods in per_attempt.items() if pods == 1}
        by_index = {a.index: a for a in st.attempts}
        assert all(by_index[a].reason == "Lost" for a in lone), (n, dict(per_attempt))
    assert not watch.unbound(), "orphan Pending pods left"
    logs = "".join(p.read_text(errors="replace") for p in outputs)
    counts = {"kills": KILLS, "adopted": logs.count("reconcile: adopted attempt"),
              "cleared": logs.count("was not fully bound at the restart"),
              "superseded/ended pods deleted": _summed(logs, "reconcile: deleted ", " pod(s) of"),
              "orphans deleted": _summed(logs, "and ", " orphan unbound") + _summed(logs, "deleted its ", " pod(s)"),
              "violations": len(watch.violations)}
    print(f"\nkill test: {counts}")


def _summed(text: str, before: str, after: str) -> int:
    import re

    return sum(int(m) for m in re.findall(re.escape(before) + r"(\d+)" + re.escape(after), text))
