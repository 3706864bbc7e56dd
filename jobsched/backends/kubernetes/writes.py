"""API writes from one long-lived pool, under a client-side rate limit.

Every write the Kubernetes backend makes (pod creates, bindings, deletes, the TrainingJob mirror and
status patches) goes through one :class:`Writer`: a token bucket of ``qps`` tokens a second holding
at most ``burst`` (client-go's ``QPS``/``Burst``: kube-scheduler's defaults are 50/100), and one
thread pool that lives as long as the backend (no pool per gang start). Responses are always read
and released, so their connections go back to urllib3's pool instead of a TLS handshake per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class RateLimiter:
    """A token bucket: ``acquire`` blocks until a token is free (``qps`` <= 0: unlimited)."""

    def __init__(self, qps: float, burst: int) -> None:
        if qps > 0 and burst < 1:
            raise ValueError(f"burst: must be >= 1, got {burst}")
        self.qps, self.burst = float(qps), int(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds callers spent waiting for a token (for benchmarks)

    def acquire(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:  # reserve a token now (possibly going negative) and sleep off the debt
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
            self.waited += wait
        if wait > 0:
            time.sleep(wait)


def drain(resp: Any) -> bytes:
    """Read a ``_preload_content=False`` response to the end and hand its connection back."""
    try:
        return bytes(resp.read())
    finally:
        resp.release_conn()


class Writer:
    """The backend's API write path: rate-limited calls, on the caller's thread or the pool's."""

    def __init__(self, qps: float, burst: int, workers: int, api_client: Any = None) -> None:
        if workers < 1:
            raise ValueError(f"api_workers: must be >= 1, got {workers}")
        self.api_client = api_client
        self.limiter = RateLimiter(qps, burst)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jobsched-k8s-api")
        self.calls = 0
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` after taking a token."""
        self.limiter.acquire()
        with self._lock:
            self.calls += 1
        return fn(*args, **kwargs)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """A write whose response body is not needed: read raw (no model objects) and released."""
        return drain(self.call(fn, *args, _preload_content=False, **kwargs))

    def post(self, path: str, body: dict[str, Any], **path_params: str) -> bytes:
        """POST a plain-dict body to ``path`` (e.g. ``/api/v1/namespaces/{namespace}/pods``) through
        the client's request builder (its host, auth and TLS), without the generated method's
        model validation: turning a pod dict into a ``V1Pod`` and back cost a quarter of the
        scheduler's CPU at 1,000 pods. Raises ``ApiException`` for a non-2xx answer."""
        from kubernetes.client.exceptions import ApiException

        api = self.api_client
        params = api.param_serialize(method="POST", resource_path=path, path_params=path_params,
                                     header_params={"Accept": "application/json",
                                                    "Content-Type": "application/json"},
                                     body=body, auth_settings=["BearerToken"])
        self.limiter.acquire()
        with self._lock:
            self.calls += 1
        resp = api.call_api(*params)
        try:
            data = resp.read()
        finally:
            resp.response.release_conn()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=data.decode("utf-8", "replace"), data=None)
        return bytes(data)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self.pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
