"""Leader election with a coordination.k8s.io/v1 Lease, so two scheduler replicas never both bind."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

log = logging.getLogger("jobsched.k8s.leader")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaseElector:
    def __init__(self, api_client: Any, namespace: str, name: str, identity: str,
                 lease_seconds: int = 15, renew_seconds: float = 2.0) -> None:
        from kubernetes import client

        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        return self._leader.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-elector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._leader.is_set():
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as e:  # API server unreachable: lose leadership when the lease ends
                log.warning("lease %s: %s", self.name, e)
            self._stop.wait(self.renew_seconds)

    def try_acquire_or_renew(self) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        now = _now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                  spec=client.V1LeaseSpec(holder_identity=self.identity,
                                                          lease_duration_seconds=self.lease_seconds,
                                                          acquire_time=now, renew_time=now, lease_transitions=0))
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as e2:
                if e2.status == 409:
                    return False
                raise
            self._leader.set()
            return True
        spec = lease.spec
        holder = spec.holder_identity
        renew = spec.renew_time
        expired = renew is None or (now - renew).total_seconds() > (spec.lease_duration_seconds or self.lease_seconds)
        if holder != self.identity and not expired:
            self._leader.clear()
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        try:  # optimistic concurrency: the resourceVersion in lease makes a racing update fail
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as e:
            if e.status == 409:
                self._leader.clear()
                return False
            raise
        self._leader.set()
        return True

    def _release(self) -> None:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception:
            pass
        self._leader.clear()
