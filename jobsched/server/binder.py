"""Binds and stops off the controller loop.

The controller assumes an attempt in the store, then hands its *bind* (``backend.start``) to a
bounded pool of workers and goes on with its tick: a slow or failing start delays only its own job.
Finished binds are handed back to the controller on a later tick (:meth:`Binder.finished`), which
records them, so every store transition stays on the controller thread. A start that runs past its
timeout is handed back by :meth:`Binder.overdue` to be unreserved; if it still returns later, its
replicas are stopped. Stops (``backend.stop``) run on a small pool of their own.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field

from jobsched.backends.base import Backend, GangLaunch, StartError
from jobsched.store import JobRow

log = logging.getLogger("jobsched.binder")
Handles = dict[int, dict[str, object]]


@dataclass
class Bind:
    job: JobRow
    gang: GangLaunch
    future: Future[Handles] = field(default_factory=Future)
    began: float | None = None  # time.monotonic() when a worker took it up; None while queued

    @property
    def key(self) -> tuple[str, int]:
        return (self.gang.job_key, self.gang.attempt)

    def error(self) -> StartError | None:
        """The StartError of a finished bind (any other exception becomes a transient one)."""
        if self.future.cancelled():
            return StartError(f"could not start {self.gang.job_key}: the server stopped first")
        e = self.future.exception()
        if e is None or isinstance(e, StartError):
            return e
        return StartError(f"could not start {self.gang.job_key}: {type(e).__name__}: {e}")


class Binder:
    def __init__(self, backend: Backend, workers: int = 4, timeout: float = 120.0) -> None:
        if workers < 1:
            raise ValueError(f"parallel_starts: must be >= 1, got {workers}")
        if timeout <= 0:
            raise ValueError(f"start_timeout: must be > 0, got {timeout}")
        self.backend, self.timeout = backend, timeout
        self._starts = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jobsched-bind")
        self._stops = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobsched-stop")
        self._inflight: dict[tuple[str, int], Bind] = {}
        self._abandoned: list[Bind] = []
        self._lock = threading.Lock()

    def submit(self, job: JobRow, gang: GangLaunch) -> None:
        b = Bind(job, gang)
        with self._lock:
            self._inflight[b.key] = b
        b.future = self._starts.submit(self._start, b)

    def _start(self, b: Bind) -> Handles:
        b.began = time.monotonic()
        return self.backend.start(b.gang)

    def in_flight(self, job_key: str, attempt: int) -> bool:
        with self._lock:
            return (job_key, attempt) in self._inflight

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def finished(self) -> list[Bind]:
        """Binds that finished (started, or raised) since the last call; see :meth:`Bind.error`."""
        with self._lock:
            done = [b for b in self._inflight.values() if b.future.done()]
            for b in done:
                del self._inflight[b.key]
        return done

    def overdue(self) -> list[Bind]:
        """Binds whose start has run longer than the timeout: given up (the caller unreserves them).
        Should such a start still succeed, its replicas are stopped then."""
        now = time.monotonic()
        with self._lock:
            late = [b for b in self._inflight.values()
                    if not b.future.done() and b.began is not None and now - b.began > self.timeout]
            for b in late:
                del self._inflight[b.key]
                self._abandoned.append(b)
        self.reap()
        return late

    def reap(self) -> None:
        """Stop the replicas of given-up binds whose start has since returned."""
        with self._lock:
            done = [b for b in self._abandoned if b.future.done()]
            self._abandoned = [b for b in self._abandoned if not b.future.done()]
        for b in done:
            if b.error() is None:
                log.warning("start of %s attempt %d returned after its timeout: stopping its replicas",
                            b.gang.job_key, b.gang.attempt)
                self.stop(b.gang.job_key, b.gang.attempt, "StartTimeout", grace_seconds=0)

    def stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float = 10.0) -> None:
        """Stop an attempt's replicas in the background. An attempt whose start is still in flight
        has nothing to stop yet: the controller stops it once the start returns."""
        if self.in_flight(job_key, attempt):
            return
        self._stops.submit(self._stop, job_key, attempt, reason, grace_seconds)

    def _stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float) -> None:
        try:
            self.backend.stop(job_key, attempt, reason, grace_seconds=grace_seconds)
        except Exception:  # logged; the replicas' exits (or their absence) still arrive by poll
            log.exception("stopping %s attempt %d failed", job_key, attempt)

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the binds in flight (server shutdown)."""
        with self._lock:
            futures = [b.future for b in self._inflight.values()]
        if futures:
            wait_futures(futures, timeout=timeout)

    def close(self) -> None:
        self._starts.shutdown(wait=False, cancel_futures=True)
        self._stops.shutdown(wait=True)
