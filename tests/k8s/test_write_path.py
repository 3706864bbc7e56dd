"""The Kubernetes backend's write path against a real kube-apiserver + KWOK: connections are reused,
TrainingJob status is written only when it changes, bad rate options are refused, and the
pre-start hook runs before any pod of the attempt exists."""

from __future__ import annotations

import collections
import threading
import uuid

import pytest

from jobsched.backends import make_backend
from jobsched.backends.base import StartError
from jobsched.server.runtime import Runtime
from tests.k8s.test_backend import crds, job, label, pods_of, until  # noqa: F401

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crds")]  # crds: test_backend.py's fixture


class Writes:
    """Counts the writes one REST client sends about objects named with ``marker`` (other tests'
    leftover TrainingJobs are imported too), by method and the path's last segments."""

    def __init__(self, rest_client, marker: str) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        inner = rest_client.request

        def request(method, url, *args, **kwargs):
            if method in ("POST", "PUT", "PATCH", "DELETE") and marker in f"{url} {kwargs.get('body')}":
                path = url.split("?", 1)[0].rstrip("/").split("/")
                kind = path[-1] if path[-1] in ("binding", "status") else path[-1 if method == "POST" else -2]
                with self.lock:
                    self.counts[f"{method} {kind}"] += 1
            return inner(method, url, *args, **kwargs)

        rest_client.request = request


def runtime(k8s_cluster, tmp_path, **options) -> Runtime:
    return Runtime(tmp_path / "home", backend="kubernetes",
                   backend_options={"kubeconfig": str(k8s_cluster.kubeconfig),
                                    "lease_name": f"js-{uuid.uuid4().hex[:6]}", **options})


@pytest.mark.parametrize("option, value", [("burst", 0), ("qps", -1), ("parallel_starts", 0), ("api_workers", 0),
                                           ("bind", "nodeName")])
def test_bad_rate_options_are_refused_naming_the_option(tmp_path, option, value):
    with pytest.raises(ValueError, match=rf"^{option}: must be"):
        make_backend("kubernetes", home=tmp_path, kubeconfig=str(tmp_path / "none"), **{option: value})


def test_connections_reused_and_status_written_once_per_change(k8s_cluster, tmp_path):
    rt = runtime(k8s_cluster, tmp_path, parallel_starts=2, api_workers=2)
    pool = label()
    writes = Writes(rt.backend.api_client.rest_client, f"w{pool}-")
    rt.start()
    try:
        until(rt.backend.is_leader, what="leadership")
        k8s_cluster.add_nodes(1, cpu="8", memory="32Gi", labels={"pool": pool})
        until(lambda: any(n.labels.get("pool") == pool for n in rt.backend.nodes()), what="node seen")
        names = [f"w{pool}-{i}" for i in range(40)]
        for name in names:
            rt.service.submit(job(name, 1, pool, cpu="100m", memory="100Mi"))
        until(lambda: all(rt.service.get("default", n).phase.value == "Running" for n in names),
              timeout=120, what="40 jobs running")
        custom = rt.backend.custom

        def statuses_running() -> bool:
            items = custom.list_namespaced_custom_object("jobsched.io", "v1alpha1", "default",
                                                         "trainingjobs")["items"]
            mine = {o["metadata"]["name"]: o for o in items if o["metadata"]["name"] in names}
            return len(mine) == 40 and all((o.get("status") or {}).get("phase") == "Running"
                                           for o in mine.values())

        until(statuses_running, timeout=120, what="every TrainingJob's status Running")
        # 40 pod creates through 2 workers: the connections go back to the pool
        # (a response left unread would take one connection, and a TLS handshake, per bind).
        api = rt.backend.api_client
        conns = api.rest_client.pool_manager.connection_from_url(api.configuration.host)
        assert conns.num_connections <= 20, conns.num_connections
        c = writes.counts
        # One write a pod: created on its node (bind="create", the default), no Binding.
        assert c["POST pods"] == 40 and c["POST binding"] == 0 and c["POST trainingjobs"] == 40, c
        # Status: written on a change of phase, reason or attempts (Pending, Admitted, Running at
        # most), and never again while nothing changes.
        assert 40 <= c["PATCH status"] <= 120, c
        # (Events are posted on their own thread and may still be arriving: every write but those.)
        def object_writes() -> dict[str, int]:
            with writes.lock:
                return {k: v for k, v in writes.counts.items() if k != "POST events" and v}

        before = object_writes()
        rt.backend.crsync._write_statuses()
        assert object_writes() == before, writes.counts
    finally:
        rt.stop()


@pytest.mark.parametrize("bind", ["binding", "create"])
def test_both_bind_modes_place_a_gang_whole_on_the_chosen_nodes(k8s_cluster, tmp_path, bind):
    # "binding": created unscheduled, then one Binding a pod; "create": spec.nodeName in the create
    # and no Binding. Either way a gang lands whole on the nodes the core chose (two 3-CPU replicas
    # on two 4-CPU nodes: one each) and a single replica beside it.
    rt = runtime(k8s_cluster, tmp_path, bind=bind)
    pool = label()
    writes = Writes(rt.backend.api_client.rest_client, f"c{pool}-")
    rt.start()
    try:
        until(rt.backend.is_leader, what="leadership")
        k8s_cluster.add_nodes(2, cpu="4", memory="8Gi", labels={"pool": pool})
        until(lambda: sum(n.labels.get("pool") == pool for n in rt.backend.nodes()) == 2, what="nodes seen")
        gang, single = f"c{pool}-gang", f"c{pool}-one"
        rt.service.submit(job(gang, 2, pool, cpu="3", memory="1Gi"))
        rt.service.submit(job(single, 1, pool, cpu="500m", memory="100Mi"))
        until(lambda: all(rt.service.get("default", n).phase.value == "Running" for n in (gang, single)),
              timeout=120, what="both running")
        nodes = [p.spec.node_name for p in pods_of(rt.backend.core, gang)]
        assert len(nodes) == 2 and len(set(nodes)) == 2 and all(nodes), nodes
        assert all(p.spec.node_name for p in pods_of(rt.backend.core, single))
        c = writes.counts
        assert c["POST pods"] == 3 and c["POST binding"] == (3 if bind == "binding" else 0), c
    finally:
        rt.stop()


def test_pre_start_hook_runs_before_any_pod_and_can_refuse(k8s_cluster, tmp_path):
    rt = runtime(k8s_cluster, tmp_path)
    refuse = threading.Event()
    refuse.set()
    seen: list[tuple[str, int, int]] = []

    def hook(gang):
        core = rt.backend.core
        existing = core.list_namespaced_pod("default", label_selector=f"jobsched.io/job-uid={gang.job_uid}").items
        seen.append((gang.job_key, gang.attempt, len(existing)))
        if refuse.is_set():
            raise StartError("superseded attempt's pods still terminating")

    rt.backend.pre_start.append(hook)
    rt.start()
    try:
        until(rt.backend.is_leader, what="leadership")
        pool = label()
        k8s_cluster.add_nodes(1, cpu="4", memory="8Gi", labels={"pool": pool})
        until(lambda: any(n.labels.get("pool") == pool for n in rt.backend.nodes()), what="node seen")
        name = f"hook-{pool}"
        rt.service.submit(job(name, 1, pool))
        until(lambda: seen, what="the hook called")
        until(lambda: rt.service.get("default", name).phase.value == "Pending", what="start refused, requeued")
        assert pods_of(rt.backend.core, name) == []  # a refused start creates nothing
        refuse.clear()
        until(lambda: rt.service.get("default", name).phase.value == "Running", timeout=90, what="running")
        assert all(n == 0 for _, _, n in seen)  # each call came before any pod of the job existed
        assert len(pods_of(rt.backend.core, name)) == 1
    finally:
        rt.stop()
