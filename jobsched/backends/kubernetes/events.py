"""Kubernetes Events for what ``jobsched events`` records, so that ``kubectl describe`` shows them.

The store's events (Submitted, Pending, Admitted, OOMKilled, Resized, Preempted, Failed, ...) are
mirrored, with the same type, reason and message, as core/v1 Events (what ``kubectl describe``
lists: ``involvedObject`` name, namespace, kind and uid) on:

* the TrainingJob custom resource, every event;
* the Queue custom resource, for admissions and preemptions of its jobs;
* the pods, where they matter: a replica's failure (``replica N OOMKilled: ...``) on that replica's
  pod, a preemption on every pod of the attempt.

Off the scheduling path: one thread reads the store's new events every ``interval`` seconds (the
leader only) and writes them; the scheduler never waits for it. Like client-go's recorder, each
object gets at most ``burst`` Events, then one per ``refill`` seconds (the rest are dropped, and
``jobsched events`` keeps them all). Event names are derived from the store event's id, so a
restart that writes an event again gets 409 and nothing doubles.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jobsched.backends.kubernetes import pods as P
from jobsched.backends.kubernetes.conditions import rfc3339

log = logging.getLogger("jobsched.k8s.events")
GROUP_VERSION = "jobsched.io/v1alpha1"
QUEUE_REASONS = frozenset({"Admitted", "Preempted"})
POD_REASONS = frozenset({"Preempted"})  # on every pod of the attempt; "replica N ..." on that one
_REPLICA = re.compile(r"^replica (\d+) ")
REPLAY_SECONDS = 600.0  # on start-up, events of the last 10 minutes are (re)written; 409 if there


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class EventRecorder:
    backend: Any
    store: Any
    interval: float = 1.0
    burst: int = 25
    refill: float = 300.0
    wait_for_object: float = 30.0  # an API submission's CR is mirrored asynchronously: wait this long
    per_flush: int = 100  # store events written per round (each becomes 1-3 Events)
    _last: int = 0
    _held: list[tuple[float, Any]] = field(default_factory=list)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    written: int = 0
    max_defer: float = 30.0  # seconds Events wait for starts in flight before they are written anyway

    def start(self) -> None:
        self._last = self.store.last_event_before(time.time() - REPLAY_SECONDS)
        threading.Thread(target=self._loop, name="k8s-events", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        busy_since: float | None = None
        while not self._stop.wait(self.interval):
            if not self.backend.is_leader():
                continue
            # Events are the lowest-priority writes (as client-go's recorder): while pods are being
            # started they wait, up to max_defer seconds, so that they never take API room from binds.
            now = time.monotonic()
            if getattr(self.backend, "starting", lambda: 0)():
                busy_since = busy_since if busy_since is not None else now
                if now - busy_since < self.max_defer:
                    continue
            busy_since = None
            try:
                self.flush()
            except Exception as e:  # API server away for a moment: the store keeps them; next round
                log.warning("events: %s", type(e).__name__)

    def flush(self) -> None:
        """Write the events recorded since the last flush (and those held for their object), at
        most ``per_flush`` store events a round: a burst of submissions is spread out rather than
        competing with binds for the API server."""
        now = time.time()
        rows = [r for _, r in self._held]
        held_since = {id(r): t for t, r in self._held}
        self._held = []
        room = self.per_flush - len(rows)
        new = self.store.events_since(self._last, room) if room > 0 else []
        if new:
            rows += new
            self._last = int(new[-1]["id"])
        for row in rows:
            if not self._write(row) and now - held_since.get(id(row), now) < self.wait_for_object:
                self._held.append((held_since.get(id(row), now), row))

    # ------------------------------------------------------------------------------------------
    def _write(self, row: Any) -> bool:
        """Write one store event's Events; False: its TrainingJob is not in the cluster yet."""
        ns, name = row["namespace"], row["name"]
        inf = self.backend.jobs_inf
        cr = inf.cache.get(f"{ns}/{name}") if inf is not None else None
        if cr is None:
            return False
        tag = f"{str(row['job_uid'])[:8]}.{int(row['id']):x}"
        self._create(ns, f"{name}.{tag}", {"apiVersion": GROUP_VERSION, "kind": "TrainingJob", "name": name,
                                           "namespace": ns, "uid": cr["metadata"]["uid"]}, row, row["message"])
        if row["reason"] in QUEUE_REASONS:
            self._on_queue(row, tag)
        self._on_pods(row, tag)
        return True

    def _on_queue(self, row: Any, tag: str) -> None:
        qinf = self.backend.queues_inf
        q = qinf.cache.get(row["queue"]) if qinf is not None else None
        if q is None:
            return
        ref = {"apiVersion": GROUP_VERSION, "kind": "Queue", "name": row["queue"], "uid": q["metadata"]["uid"]}
        # A cluster-scoped object's Events live in "default" (as client-go's recorder puts them).
        self._create("default", f"{row['queue']}.{tag}", ref, row,
                     f"job {row['namespace']}/{row['name']}: {row['message']}")

    def _on_pods(self, row: Any, tag: str) -> None:
        m = _REPLICA.match(row["message"])
        if m is None and row["reason"] not in POD_REASONS:
            return
        attempt = self._attempt_at(row)
        if attempt is None:
            return
        ranks = [int(m.group(1))] if m else [int(a[0]) for a in attempt.assignments]
        ns = row["namespace"]
        for rank in ranks:
            pod = P.pod_name(row["name"], attempt.idx, rank)
            obj = self.backend.pods_inf.cache.get(f"{ns}/{pod}")
            ref = {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns}
            if obj is not None:  # else already deleted: the Event still names it (kubectl get events)
                ref["uid"] = obj["metadata"]["uid"]
            self._create(ns, f"{pod}.{tag}", ref, row, row["message"])

    def _attempt_at(self, row: Any) -> Any:
        """The attempt that was running when the event was recorded."""
        atts = [a for a in self.store.attempts(row["job_uid"]) if a.started_at is None or a.started_at <= row["time"]]
        return atts[-1] if atts else None

    def _allowed(self, key: str, now: float) -> bool:
        if len(self._buckets) > 10_000:  # forget objects whose bucket has refilled
            full = self.burst * self.refill
            self._buckets = {k: v for k, v in self._buckets.items() if now - v.at < full}
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) / self.refill)
        b.at = now
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _create(self, ns: str, name: str, ref: dict[str, Any], row: Any, message: str) -> None:
        from kubernetes.client.exceptions import ApiException

        if not self._allowed(f"{ref['kind']}/{ref.get('namespace', '')}/{ref['name']}", time.time()):
            return
        when = rfc3339(float(row["time"]))
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name[:253], "namespace": ns},
                "involvedObject": ref, "type": row["type"], "reason": row["reason"], "message": message[:1024],
                "source": {"component": "jobsched"}, "reportingComponent": "jobsched",
                "reportingInstance": getattr(self.backend, "identity", "jobsched")[:128],
                "firstTimestamp": when, "lastTimestamp": when, "count": 1}
        try:
            self.backend.core.create_namespaced_event(ns, body)
            self.written += 1
        except ApiException as e:
            if e.status not in (404, 409):  # 409: written before a restart; 404: namespace gone
                log.warning("event %s/%s: %s", ns, name, e.reason)
