"""The API server is the source of truth for what is bound: jobsched's pods, read back and set right.

Every pod jobsched creates carries its job's uid and the attempt index (``pods.L_UID``,
``pods.L_ATTEMPT``). From those labels:

- an attempt the store still calls "starting" after a restart is *adopted* when every replica's pod
  exists and is bound (the bind happened; the store had not recorded it yet), and otherwise all its
  pods are deleted and confirmed gone, so that it can be requeued with nothing of it left running;
- before a new attempt's pods are created, pods of the job's other attempts are deleted and
  confirmed gone: two attempts of one job never run at once;
- pods of attempts the store has ended, and unbound pods no start is working on, are deleted;
- bound pods that nothing tracks still hold room on their node until they are gone (:func:`usage`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobsched.backends.kubernetes import pods as P
from jobsched.backends.kubernetes import views as V

log = logging.getLogger("jobsched.k8s.reconcile")
TERMINAL = ("Succeeded", "Failed")
Attempt = tuple[str, int]  # (job uid, attempt index)


@dataclass
class Counts:
    adopted: int = 0
    cleared: int = 0  # "starting" attempts found incomplete and deleted
    superseded_deleted: int = 0  # pods of older/ended attempts
    orphans_deleted: int = 0  # unbound pods no start is working on


@dataclass
class OwnPod:
    uid: str
    attempt: int
    rank: int
    namespace: str
    name: str
    node: str | None
    live: bool  # not Succeeded/Failed: it holds (or will hold) room
    obj: Any = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def requests(self) -> tuple[int, int, int]:
        return requests(self.obj)


def own_pod(pod: dict[str, Any]) -> OwnPod | None:
    """A jobsched pod (the API server's JSON, as the informers keep it), or None for any other pod."""
    md = pod.get("metadata") or {}
    labels = md.get("labels") or {}
    if P.L_UID not in labels:
        return None
    phase = (pod.get("status") or {}).get("phase")
    return OwnPod(labels[P.L_UID], int(labels[P.L_ATTEMPT]), int(labels[P.L_REPLICA]), md.get("namespace", ""),
                  md["name"], (pod.get("spec") or {}).get("nodeName"), phase not in TERMINAL, pod)


def requests(pod: dict[str, Any]) -> tuple[int, int, int]:
    """(cpu milli, memory bytes, GPUs) a pod requests (limits stand in for missing requests)."""
    return V.pod_requests(pod)


def add_usage(into: dict[str, tuple[int, int, int]], node: str, r: tuple[int, int, int]) -> None:
    a, b, c = into.get(node, (0, 0, 0))
    into[node] = (a + r[0], b + r[1], c + r[2])


@dataclass
class Reconciler:
    core: Any  # kubernetes.client.CoreV1Api
    cached: Callable[[], list[Any]]  # the pods informer's objects (jobsched's pods, plain dicts)
    confirm_timeout: float = 30.0
    counts: Counts = field(default_factory=Counts)
    # job uid -> {namespace/name: attempt} of its live pods, kept by observe() from the pods informer
    _live: dict[str, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, typ: str, pod: Any) -> None:
        """Every event of the pods informer (SYNC, ADDED, MODIFIED, DELETED)."""
        own = own_pod(pod)
        if own is None:
            return
        rep, key = (own.uid, own.attempt), own.key
        gone = typ == "DELETED" or not own.live
        with self._lock:
            pods = self._live.setdefault(rep[0], {})
            if gone:
                pods.pop(key, None)
                if not pods:
                    del self._live[rep[0]]
            else:
                pods[key] = rep[1]

    def own(self) -> list[OwnPod]:
        return [p for p in (own_pod(o) for o in self.cached()) if p is not None]

    def _listed(self, namespace: str, uid: str) -> list[OwnPod]:
        got = self.core.list_namespaced_pod(namespace, label_selector=f"{P.L_UID}={uid}").items
        plain = self.core.api_client.sanitize_for_serialization  # V1Pod -> the API server's JSON
        return [p for p in (own_pod(plain(o)) for o in got) if p is not None]

    def _delete(self, pods: Iterable[OwnPod]) -> int:
        from kubernetes.client.exceptions import ApiException

        n = 0
        for p in pods:
            try:
                self.core.delete_namespaced_pod(p.name, p.namespace, grace_period_seconds=0)
                n += 1
            except ApiException as e:
                if e.status != 404:
                    raise
        return n

    def _gone(self, namespace: str, uid: str, doomed: Callable[[OwnPod], bool]) -> None:
        """Wait until the API server lists no pod of ``uid`` that ``doomed`` picks (deleted for good)."""
        deadline = time.monotonic() + self.confirm_timeout
        while any(doomed(p) for p in self._listed(namespace, uid)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pods of job uid {uid} still there {self.confirm_timeout:g} s after "
                                   "their deletion")
            time.sleep(0.1)

    # the three reconciliations --------------------------------------------------------------
    def recover_start(self, namespace: str, uid: str, attempt: int, ranks: int) -> dict[int, dict[str, object]] | None:
        """A "starting" attempt left by an earlier process: its handles when every replica's pod
        exists and is bound (adopt it), else None once whatever it had is deleted and gone."""
        mine = [p for p in self._listed(namespace, uid) if p.attempt == attempt]
        by_rank = {p.rank: p for p in mine}
        if len(by_rank) == ranks and all(p.node for p in mine):
            self.counts.adopted += 1
            log.info("reconcile: adopted attempt %d of job uid %s: its %d pod(s) were bound before the restart",
                     attempt, uid, ranks)
            return {r: {"namespace": p.namespace, "pod": p.name, "node": p.node} for r, p in by_rank.items()}
        n = self._delete(mine)
        self._gone(namespace, uid, lambda p: p.attempt == attempt)
        self.counts.cleared += 1
        self.counts.orphans_deleted += n
        log.info("reconcile: attempt %d of job uid %s was not fully bound at the restart: deleted its %d pod(s)",
                 attempt, uid, n)
        return None

    def clear_superseded(self, namespace: str, uid: str, attempt: int) -> int:
        """Before attempt ``attempt`` creates pods: delete the job's live pods of other attempts and
        wait until they are gone. Returns how many were deleted."""
        with self._lock:
            others = any(a != attempt for a in self._live.get(uid, {}).values())
        if not others:
            return 0  # the informer (complete since start-up) knows of none: no API call
        old = [p for p in self._listed(namespace, uid) if p.attempt != attempt and p.live]
        n = self._delete(old)
        self._gone(namespace, uid, lambda p: p.attempt != attempt and p.live)
        self.counts.superseded_deleted += n
        if n:
            log.info("reconcile: deleted %d pod(s) of superseded attempts of job uid %s before attempt %d",
                     n, uid, attempt)
        return n

    def sweep(self, live: set[Attempt], busy: set[Attempt], known: Callable[[set[str]], set[str]]) -> int:
        """Delete live pods of attempts the store has ended (``live``: attempts not ended), and
        unbound pods that no start is working on (``busy``: starting attempts, in flight or not
        yet recovered). Pods of jobs the store does not know (``known``) are left alone."""
        pods = [p for p in self.own() if p.live]
        stale = [p for p in pods if (p.uid, p.attempt) not in live]
        orphans = [p for p in pods if (p.uid, p.attempt) in live and not p.node and (p.uid, p.attempt) not in busy]
        if stale:
            ours = known({p.uid for p in stale})
            stale = [p for p in stale if p.uid in ours]
        n_stale, n_orphans = self._delete(stale), self._delete(orphans)
        self.counts.superseded_deleted += n_stale
        self.counts.orphans_deleted += n_orphans
        if n_stale or n_orphans:
            log.info("reconcile: deleted %d pod(s) of ended attempts and %d orphan unbound pod(s)",
                     n_stale, n_orphans)
        return n_stale + n_orphans
