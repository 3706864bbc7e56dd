"""The Kubernetes backend: one pod per replica with ``schedulerName: jobsched``, created on its node
(``spec.nodeName``; or bound through the Binding subresource, ``bind="binding"``) once the whole gang
is placed; replica events read back from pod status through
list+watch; TrainingJob/Queue custom resources imported and their status written back; a Lease so
that only one scheduler replica binds."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobsched.backends.base import GangLaunch, ReplicaEvent, StartError
from jobsched.backends.kubernetes import pods as P
from jobsched.backends.kubernetes import views as V
from jobsched.backends.kubernetes.informer import Informer, wait_synced
from jobsched.backends.kubernetes.objects import ObjectActions
from jobsched.backends.kubernetes.reconcile import Reconciler, add_usage
from jobsched.backends.kubernetes.ttl import Janitor
from jobsched.backends.kubernetes.writes import Writer
from jobsched.spec.node import GPU_MODEL_LABEL, Node, gfd_gpu

log = logging.getLogger("jobsched.k8s")
GROUP, VERSION = "jobsched.io", "v1alpha1"


@dataclass
class _Tracked:
    job_key: str
    attempt: int
    rank: int
    namespace: str
    pod: str
    node: str
    memory_limit: int | None
    running: bool = False
    done: bool = False
    stopping: bool = False


@dataclass
class KubernetesBackend:
    home: Path
    kubeconfig: str | None = None
    context: str | None = None
    leader_election: bool = True
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    lease_name: str = "jobsched-scheduler"
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    checkpoint_storage_class: str | None = None
    checkpoint_size: str = "10Gi"
    import_custom_resources: bool = True
    node_provider: str | None = None  # kwok | karpenter: adds nodes when gangs pend (with --node-pool)
    node_class: str | None = None  # Karpenter NodeClass reference group/kind/name
    parallel_starts: int = 32  # gangs started at once (server/binder.py workers)
    # client-side rate limit on API writes (client-go's QPS; <= 0: none): a pod costs one write
    # (two with bind="binding"), so 500 lets ~500 pods/s through
    qps: float = 500.0
    burst: int = 1000  # writes allowed at once above qps (client-go's Burst)
    api_workers: int = 32  # the long-lived pool that creates and binds a gang's pods in parallel
    # How a placed pod reaches its node: "create" sets spec.nodeName in the create itself (one
    # write and one round trip a pod: 1.35x the binds/s of "binding" in benchmarks/bench_k8s.py);
    # "binding" creates it unscheduled, then POSTs the Binding subresource (kube-scheduler's way:
    # two writes), for clusters whose admission policy refuses pods created with a node. Either way
    # the gang is placed as a whole before its first pod exists, and the reconciler sees the same pods.
    bind: str = "create"
    # Finished jobs' pods and Service are deleted this long after (spec.ttlSecondsAfterFinished wins;
    # None: kept until the job is deleted). See ttl.py.
    ttl_seconds_after_finished: int | None = None
    record_events: bool = True  # Kubernetes Events for what `jobsched events` records (events.py)
    watch_kubeflow: bool = False  # schedule PyTorchJob/MXJob/TFJob objects (kubeflow_watch.py)
    watch_volcano: bool = False  # schedule Volcano Job objects (kubeflow_watch.py)
    watch_jobs: bool = False  # schedule batch/v1 Jobs with spec.managedBy: jobsched.io/scheduler
    name: str = "kubernetes"
    runs_entrypoints = True  # a pod without `command` runs its image's entrypoint (workflow steps too)
    # Called first in every start (k8s API calls allowed): e.g. delete a superseded attempt's pods
    # before this attempt's pods are created. Raise StartError to refuse the start.
    pre_start: list[Callable[[GangLaunch], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from kubernetes import client, config

        for opt in ("parallel_starts", "burst", "api_workers"):  # before any connection is made
            if not isinstance(getattr(self, opt), int) or getattr(self, opt) < 1:
                raise ValueError(f"{opt}: must be an integer >= 1, got {getattr(self, opt)!r}")
        if self.bind not in ("binding", "create"):
            raise ValueError(f"bind: must be 'binding' or 'create', got {self.bind!r}")
        if not isinstance(self.qps, (int, float)) or self.qps < 0:
            raise ValueError(f"qps: must be a number >= 0 (0: no client-side limit), got {self.qps!r}")

        if self.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            self.api_client = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        else:
            config.load_incluster_config()
            self.api_client = client.ApiClient()
        # Starts, the API pool and the watches run at once: a connection each (urllib3's default is 10).
        self.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = \
            self.parallel_starts + self.api_workers + 8
        self.writer = Writer(self.qps, self.burst, self.api_workers, self.api_client)
        self._starting = 0  # starts in flight (lower-priority writes yield to them)
        self._last_start = float("-inf")  # time.monotonic() when the last start ended
        self.core = client.CoreV1Api(self.api_client)
        self.objects = ObjectActions(self.api_client)  # discovers the API on first use
        self.custom = client.CustomObjectsApi(self.api_client)
        self._lock = threading.Lock()
        self._tracked: dict[tuple[str, int, int], _Tracked] = {}
        self._by_pod: dict[str, tuple[str, int, int]] = {}
        self._events: deque[ReplicaEvent] = deque()
        self._job_keys: dict[str, str] = {}  # job uid -> namespace/name
        self._nodes_version = 0
        self._node_digest: dict[str, tuple[Any, ...]] = {}
        self.janitor = Janitor(self.core, (P.L_UID, P.L_ATTEMPT))
        self.nodes_inf = Informer("nodes", self.core.list_node, self._on_node)
        self.pods_inf = Informer("pods", self.core.list_pod_for_all_namespaces, self._on_pod,
                                 label_selector=P.L_UID)
        # Pods of other schedulers hold room on nodes too: subtract their requests.
        self.foreign_inf = Informer("foreign-pods", self.core.list_pod_for_all_namespaces, self._on_foreign,
                                    label_selector=f"!{P.L_UID}",
                                    field_selector="status.phase!=Succeeded,status.phase!=Failed")
        self.reconciler = Reconciler(self.core, self.pods_inf.items)
        self.jobs_inf: Informer | None = None
        self.queues_inf: Informer | None = None
        self.elector = None
        if self.leader_election:
            from jobsched.backends.kubernetes.leader import LeaseElector

            self.elector = LeaseElector(self.api_client, self.lease_namespace, self.lease_name, self.identity)
            self.elector.start()
        self.nodes_inf.start()
        self.pods_inf.start()
        self.foreign_inf.start()
        wait_synced([self.nodes_inf, self.pods_inf, self.foreign_inf])

    # custom resources ----------------------------------------------------------------------
    def attach(self, service: Any) -> None:
        """Import TrainingJob/Queue custom resources (kubectl apply) as submissions."""
        from jobsched.backends.kubernetes.crsync import CustomResourceSync

        self.crsync = CustomResourceSync(self, service)
        self.crsync.start()
        if self.record_events:  # what `jobsched events` records, as Kubernetes Events, off the scheduling path
            from jobsched.backends.kubernetes.events import EventRecorder

            self.recorder = EventRecorder(self, service.store)
            self.recorder.start()
        if self.watch_kubeflow or self.watch_volcano or self.watch_jobs:  # a drop-in for their controllers
            from jobsched.backends.kubernetes.kubeflow_watch import BATCH, KUBEFLOW, VOLCANO, KubeflowWatch

            wanted = [*(KUBEFLOW if self.watch_kubeflow else ()), *(VOLCANO if self.watch_volcano else ()),
                      *(BATCH if self.watch_jobs else ())]
            self.kubeflow = KubeflowWatch(self, service, wanted)
            self.kubeflow.start()

    def make_node_provider(self, pool: Any) -> Any:
        """The NodeProvider for ``jobsched server --node-pool`` (None: no provider configured)."""
        if self.node_provider is None:
            return None
        from jobsched.backends.kubernetes.providers import make_provider

        return make_provider(self.node_provider, self.api_client, pool, self.node_class)

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    # nodes ------------------------------------------------------------------------------------
    def nodes_version(self) -> int:
        """Changes whenever a node is added, changed or deleted (the controller re-reads nodes)."""
        return self._nodes_version

    def _on_node(self, typ: str, node: Any) -> None:
        name = node["metadata"]["name"]
        if typ != "DELETED":
            # Heartbeats change nothing the scheduler uses: bump the version only on real changes.
            digest = (*V.node_digest(node), str(_taints(node)), _transient_taint(node))
            if self._node_digest.get(name) != digest:
                self._node_digest[name] = digest
                self._nodes_version += 1
            return
        self._node_digest.pop(name, None)
        self._nodes_version += 1
        now = time.time()
        with self._lock:
            lost = [t for t in self._tracked.values() if t.node == name and not t.done]
            for t in lost:
                t.done = True
                self._events.append(ReplicaEvent(t.job_key, t.attempt, t.rank, "exited", now, reason="NodeLost",
                                                 message=f"node {name} was deleted"))
        for t in lost:
            self._delete_pod(t.namespace, t.pod, grace=0)

    def _on_foreign(self, typ: str, pod: Any) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self._nodes_version += 1

    def foreign_usage(self) -> dict[str, tuple[int, int, int]]:
        """(cpu milli, memory bytes, GPUs) requested per node by pods jobsched did not place, and by
        its own pods that no live attempt tracks (left by an earlier process, until deleted)."""
        use: dict[str, tuple[int, int, int]] = {}
        for pod in self.foreign_inf.items():
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                add_usage(use, node, V.pod_requests(pod))
        with self._lock:
            tracked = set(self._by_pod)
        for own in self.reconciler.own():
            if own.node and own.live and own.key not in tracked:
                add_usage(use, own.node, own.requests)
        return use

    def nodes(self) -> list[Node]:
        out = []
        foreign = self.foreign_usage()
        for n in self.nodes_inf.items():
            st, md, spec = n.get("status") or {}, n["metadata"], n.get("spec") or {}
            ready = V.node_ready(n)
            alloc: dict[str, Any] = {k: v for k, v in (st.get("allocatable") or st.get("capacity") or {}).items()
                                     if k in ("cpu", "memory", "nvidia.com/gpu")}
            used = foreign.get(md["name"])  # held for now, not for good: "never fits" ignores it
            held = {"cpu": f"{used[0]}m", "memory": used[1], "nvidia.com/gpu": used[2]} if used else {}
            labels = dict(md.get("labels") or {})
            model, gpu_mem = gfd_gpu(labels)  # NVIDIA GPU Feature Discovery's labels
            if model:
                labels.setdefault(GPU_MODEL_LABEL, model)
            try:
                out.append(Node.model_validate({
                    "name": md["name"], "capacity": {k: v for k, v in (st.get("capacity") or {}).items()
                                                     if k in ("cpu", "memory", "nvidia.com/gpu")},
                    "allocatable": alloc, "held": held, "labels": labels, "gpu_memory": gpu_mem or None,
                    "unschedulable": bool(spec.get("unschedulable")) or not ready or _transient_taint(n),
                    "price_per_hour": float((md.get("annotations") or {}).get("jobsched.io/price-per-hour", 0)),
                    "taints": _taints(n),
                }))
            except ValueError as e:
                log.warning("node %s skipped: %s", md["name"], e)
        return out

    def object_actions(self) -> ObjectActions:
        """Get/create/apply/delete/replace/patch of any Kubernetes object (Argo resource steps)."""
        return self.objects

    # gangs ------------------------------------------------------------------------------------
    def start(self, gang: GangLaunch) -> dict[int, dict[str, object]]:
        """Create the gang's pods and bind each one as soon as its create returns (a single
        replica on the caller's thread, a gang's replicas on the long-lived API pool). Any failure
        deletes what was created: the whole gang, or nothing."""
        from kubernetes.client.exceptions import ApiException

        ns, job_name = gang.job_key.split("/", 1)
        created: list[str] = []
        self.janitor.started(gang.job_key, gang.job_uid, gang.attempt, len(gang.replicas), P.service_name(job_name),
                             self._ttl(gang))
        with self._lock:
            self._starting += 1
        try:
            # Another attempt's pods still there (an earlier process's): gone before ours exist.
            self.reconciler.clear_superseded(ns, gang.job_uid, gang.attempt)
            for hook in self.pre_start:
                hook(gang)
            # The rendezvous Service (multi-replica gangs) is created beside the checkpoint claim.
            svc = self.writer.submit(self._ensure_service, ns, job_name, gang.job_uid) \
                if len(gang.replicas) > 1 else None
            claim = self._ensure_claim(ns, job_name, gang)
            if svc is not None:
                svc.result()
            owner = self._owner(ns, job_name)
            bodies = [P.build_pod(gang, rep, ns, owner, claim) for rep in gang.replicas]
            with self._lock:  # assume in the cache before anything is bound
                self._job_keys[gang.job_uid] = gang.job_key
                for rep, b in zip(gang.replicas, bodies, strict=True):
                    pod = b["metadata"]["name"]
                    t = _Tracked(gang.job_key, gang.attempt, rep.rank, ns, pod, rep.node, rep.memory_limit)
                    self._tracked[(gang.job_key, gang.attempt, rep.rank)] = t
                    self._by_pod[f"{ns}/{pod}"] = (gang.job_key, gang.attempt, rep.rank)
            if len(bodies) == 1:
                self._create_and_bind(ns, bodies[0], gang.replicas[0].node, created)
            else:
                futures = [self.writer.submit(self._create_and_bind, ns, b, rep.node, created)
                           for rep, b in zip(gang.replicas, bodies, strict=True)]
                errors = [f.exception() for f in futures]  # every one finished: then unreserve
                first = next((e for e in errors if e is not None), None)
                if first is not None:
                    raise first
        except ApiException as e:
            self._unreserve(gang, ns, created)
            raise StartError(f"kubernetes API: {e.status} {e.reason}: {_body(e)}") from None
        except StartError:
            self._unreserve(gang, ns, created)
            raise
        except Exception as e:
            self._unreserve(gang, ns, created)
            raise StartError(str(e)) from None
        finally:
            with self._lock:
                self._starting -= 1
                self._last_start = time.monotonic()
        return {r.rank: {"namespace": ns, "pod": b["metadata"]["name"], "node": r.node}
                for r, b in zip(gang.replicas, bodies, strict=True)}

    def starting(self) -> int:
        """Starts in flight, or 1 for ``QUIET_AFTER_START`` s after the last one ended (a burst of
        submissions starts gangs tick after tick, with gaps between): the TrainingJob mirror, its
        status writes and Events wait while this is non-zero, so binds get the API server first."""
        if self._starting:
            return self._starting
        return int(time.monotonic() - self._last_start < QUIET_AFTER_START)

    def _create_and_bind(self, ns: str, body: dict[str, Any], node: str, created: list[str]) -> None:
        if self.bind == "create":  # bound by its create: one write
            body = {**body, "spec": {**body["spec"], "nodeName": node}}
        self.writer.post("/api/v1/namespaces/{namespace}/pods", body, namespace=ns)
        created.append(body["metadata"]["name"])
        if self.bind == "binding":
            self._bind(ns, body["metadata"]["name"], node)

    def _bind(self, ns: str, pod: str, node: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        # Raw: the generated client cannot deserialize the Status it returns; the response is read
        # and released (its connection goes back to the pool).
        self.writer.post("/api/v1/namespaces/{namespace}/pods/{name}/binding", body, namespace=ns, name=pod)

    def _ttl(self, gang: GangLaunch) -> int | None:
        ttl = gang.ttl_seconds_after_finished
        return self.ttl_seconds_after_finished if ttl is None else ttl

    def _unreserve(self, gang: GangLaunch, ns: str, created: list[str]) -> None:
        self.janitor.discard(gang.job_key, gang.attempt)
        with self._lock:
            for rep in gang.replicas:
                t = self._tracked.pop((gang.job_key, gang.attempt, rep.rank), None)
                if t:
                    self._by_pod.pop(f"{ns}/{t.pod}", None)
        for pod in list(created):
            self._delete_pod(ns, pod, grace=0)

    def _ensure_service(self, ns: str, job_name: str, uid: str) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": P.service_name(job_name), "namespace": ns, "labels": {P.L_UID: uid}},
                "spec": {"clusterIP": "None", "selector": {P.L_UID: uid}, "publishNotReadyAddresses": True,
                         "ports": [{"name": "rendezvous", "port": 29500}]}}
        owner = self._owner(ns, job_name)
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        try:
            self.writer.write(self.core.create_namespaced_service, ns, body)
        except ApiException as e:
            if e.status != 409:
                raise

    def _ensure_claim(self, ns: str, job_name: str, gang: GangLaunch) -> str | None:
        """The checkpoint volume survives attempts: one PVC per job (or the one the user names)."""
        from kubernetes.client.exceptions import ApiException

        named = gang.labels.get("jobsched.io/checkpoint-claim")
        if named:
            return named
        if gang.labels.get("jobsched.io/checkpoint-requested") != "true":
            return None  # no spec.checkpointDir: no volume
        claim = P.dns_name(job_name, "ckpt")
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "metadata": {"name": claim, "namespace": ns, "labels": {P.L_UID: gang.job_uid}},
                                "spec": {"accessModes": ["ReadWriteMany"],
                                         "resources": {"requests": {"storage": self.checkpoint_size}}}}
        if self.checkpoint_storage_class:
            body["spec"]["storageClassName"] = self.checkpoint_storage_class
        owner = self._owner(ns, job_name)
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        try:
            self.writer.write(self.core.create_namespaced_persistent_volume_claim, ns, body)
        except ApiException as e:
            if e.status != 409:
                raise
        return claim

    def _owner(self, ns: str, job_name: str) -> dict[str, Any] | None:
        inf = self.jobs_inf
        cr = inf.cache.get(f"{ns}/{job_name}") if inf is not None else None
        if not cr:
            return None
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "name": job_name,
                "uid": cr["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float = 10.0) -> None:
        with self._lock:
            ts = [t for t in self._tracked.values() if t.job_key == job_key and t.attempt == attempt and not t.done]
            for t in ts:
                t.stopping = True
        for t in ts:
            self._delete_pod(t.namespace, t.pod, grace=int(grace_seconds))

    def forget(self, job_key: str, job_uid: str) -> None:
        """``jobsched delete``: remove the job's pods, headless Service and checkpoint claim (all
        labelled with its uid) and its TrainingJob custom resource, if one mirrors it."""
        from kubernetes.client.exceptions import ApiException

        ns, name = job_key.split("/", 1)
        sel = f"{P.L_UID}={job_uid}"
        self.janitor.forget(job_key)
        with self._lock:
            for k in [k for k, t in self._tracked.items() if t.job_key == job_key]:
                t = self._tracked.pop(k)
                self._by_pod.pop(f"{t.namespace}/{t.pod}", None)
        calls = [lambda: self._delete_pods(ns, sel),
                 lambda: self.core.delete_namespaced_service(P.service_name(name), ns),
                 lambda: self.core.delete_collection_namespaced_persistent_volume_claim(ns, label_selector=sel),
                 lambda: self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", name)]
        for call in calls:
            try:
                call()
            except ApiException as e:
                if e.status != 404:
                    log.warning("delete %s: %s", job_key, e.reason)

    def _delete_pods(self, ns: str, selector: str) -> None:
        """List, then delete one by one: the verbs the ClusterRole grants on pods (no deletecollection)."""
        for pod in self.core.list_namespaced_pod(ns, label_selector=selector).items:
            self._delete_pod(ns, pod.metadata.name, grace=0)

    def _delete_pod(self, ns: str, pod: str, grace: int) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.writer.write(self.core.delete_namespaced_pod, pod, ns, grace_period_seconds=grace)
        except ApiException as e:
            if e.status != 404:
                log.warning("delete pod %s/%s: %s", ns, pod, e.reason)

    # events -----------------------------------------------------------------------------------
    def _on_pod(self, typ: str, pod: Any) -> None:
        self.reconciler.observe(typ, pod)
        md = pod["metadata"]
        key = f"{md.get('namespace')}/{md['name']}"
        now = time.time()
        with self._lock:
            tk = self._by_pod.get(key)
            t = self._tracked.get(tk) if tk else None
            if t is None or t.done:
                if t is None and (pod.get("spec") or {}).get("nodeName") and \
                        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    self._nodes_version += 1  # an untracked pod holds room until it is gone
                return
            if typ == "DELETED":
                t.done = True
                reason = "Cancelled" if t.stopping else "Lost"
                self._events.append(ReplicaEvent(t.job_key, t.attempt, t.rank, "exited", now, reason=reason,
                                                 exit_code=None, message=f"pod {key} deleted"))
                return
            phase = (pod.get("status") or {}).get("phase")
            # Only a terminal pod is turned into the client's model (exit_event reads V1Pod).
            ev = P.exit_event(V.to_model(self.api_client, pod, "V1Pod"), t.job_key, t.attempt, t.rank, now,
                              t.memory_limit) if phase in ("Succeeded", "Failed") else None
            if ev is not None:
                t.done = True
                self._events.append(ev)
            elif phase == "Running" and not t.running:
                t.running = True
                self._events.append(ReplicaEvent(t.job_key, t.attempt, t.rank, "running", now))

    def poll(self) -> list[ReplicaEvent]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
            for e in out:
                if e.kind == "exited":
                    t = self._tracked.pop((e.job_key, e.attempt, e.rank), None)
                    if t:
                        self._by_pod.pop(f"{t.namespace}/{t.pod}", None)
                        self.janitor.exited(e.job_key, e.attempt)
        return out

    def adopt(self, gang: GangLaunch, handles: dict[int, dict[str, object]]) -> list[ReplicaEvent]:
        """Rebuild the cache from the API server: pods that exist are tracked (and their current
        state replayed); pods that are gone are Lost. Nothing is bound twice: existing pods keep
        their node."""
        now = time.time()
        events: list[ReplicaEvent] = []
        self.janitor.started(gang.job_key, gang.job_uid, gang.attempt, len(handles),
                             P.service_name(gang.job_key.split("/", 1)[1]), self._ttl(gang))
        for rank, h in handles.items():
            ns, pod = str(h["namespace"]), str(h["pod"])
            rep = next((r for r in gang.replicas if r.rank == int(rank)), None)
            t = _Tracked(gang.job_key, gang.attempt, int(rank), ns, pod, str(h.get("node", "")),
                         rep.memory_limit if rep else None)
            with self._lock:
                self._tracked[(gang.job_key, gang.attempt, int(rank))] = t
                self._by_pod[f"{ns}/{pod}"] = (gang.job_key, gang.attempt, int(rank))
                self._nodes_version += 1  # counted by its attempt now, no longer as untracked
            obj = self.pods_inf.cache.get(f"{ns}/{pod}")
            if obj is None:
                with self._lock:
                    t.done = True
                events.append(ReplicaEvent(gang.job_key, gang.attempt, int(rank), "exited", now, reason="Lost",
                                           message=f"pod {ns}/{pod} not found after restart"))
                self.janitor.exited(gang.job_key, gang.attempt)
            else:
                self._on_pod("MODIFIED", obj)
        return events

    # reconciliation with the API server (reconcile.py) ---------------------------------------
    def recover_start(self, gang: GangLaunch) -> dict[int, dict[str, object]] | None:
        """A "starting" attempt of an earlier process: its handles if all its pods are bound, else
        None once its pods are deleted and gone."""
        ns = gang.job_key.split("/", 1)[0]
        return self.reconciler.recover_start(ns, gang.job_uid, gang.attempt, len(gang.replicas))

    def reconcile(self, live: set[tuple[str, int]], busy: set[tuple[str, int]],
                  known: Callable[[set[str]], set[str]]) -> int:
        """Delete pods of ended attempts and orphan unbound pods (see Reconciler.sweep)."""
        return self.reconciler.sweep(live, busy, known)

    # logs, misc -------------------------------------------------------------------------------
    def log_paths(self, job_key: str, attempt: int) -> dict[int, str]:
        return {}

    def read_logs(self, job_key: str, attempt: int, rank: int, stream: str = "log") -> str:
        ns, name = job_key.split("/", 1)
        try:
            return str(self.core.read_namespaced_pod_log(P.pod_name(name, attempt, rank), ns))
        except Exception as e:
            return f"(logs unavailable: {e})\n"

    def enforcement(self) -> str:
        return "kubernetes"

    def close(self) -> None:
        for inf in (self.nodes_inf, self.pods_inf, self.foreign_inf, self.jobs_inf, self.queues_inf):
            if inf is not None:
                inf.stop()
        if getattr(self, "crsync", None) is not None:
            self.crsync.stop()
        if getattr(self, "recorder", None) is not None:
            self.recorder.stop()
        if getattr(self, "kubeflow", None) is not None:
            self.kubeflow.stop()
        if self.elector is not None:
            self.elector.stop()
        self.janitor.stop()
        self.writer.close()


# Taints the node controller and Karpenter set for conditions that pass (not-ready, unreachable,
# cordoned, pressure, disruption): the node counts as unschedulable for now, never as a taint that
# could make a job unresolvable.
_TRANSIENT = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/", "karpenter.sh/")


def _spec_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return (node.get("spec") or {}).get("taints") or []


def _taints(node: dict[str, Any]) -> list[dict[str, str]]:
    """The node's lasting spec.taints (e.g. nvidia.com/gpu:NoSchedule) for the scheduler's Node."""
    return [{"key": t["key"], "value": t.get("value") or "", "effect": t.get("effect", "")}
            for t in _spec_taints(node) if not t["key"].startswith(_TRANSIENT)]


def _transient_taint(node: dict[str, Any]) -> bool:
    return any(t["key"].startswith(_TRANSIENT) and t.get("effect") in ("NoSchedule", "NoExecute")
               for t in _spec_taints(node))


QUIET_AFTER_START = 2.0  # s after a start during which lower-priority writes still wait


def _body(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", e.body))
    except Exception:
        return str(e.body)[:300]
