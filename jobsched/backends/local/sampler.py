"""The memory timeline of one replica, sampled by its shim a few times a second.

Each point is ``(t, usage, max_usage, failcnt)``: seconds since the replica started, the cgroup's
current usage (or the process tree's RSS under the watchdog), the cgroup's own high-water mark
(which also catches spikes between two samples) and how often the cgroup hit its limit. The
timeline stays compact: at most ``MAX_POINTS`` points; when full, neighbouring points are merged
(keeping the larger usage) and the resolution halves, so a day-long job costs as much as a
minute-long one. The shim writes it to ``rank-N.memory.json`` about once a second while the replica
runs (live status) and into ``result.json`` at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INTERVAL = 0.2  # seconds between samples
MAX_POINTS = 256
LIVE_EVERY = 1.0  # seconds between writes of the live file

Reading = tuple[int | None, int | None, int]  # usage, max usage (None: unknown), failcnt


class Timeline:
    """Points at a resolution that halves whenever ``max_points`` is reached."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max(4, max_points - max_points % 2)
        self.t: list[float] = []
        self.usage: list[int] = []
        self.max: list[int] = []
        self.failcnt: list[int] = []
        self.stride = 1  # raw samples per stored point
        self._bucket: list[Any] | None = None  # [t, usage, max, failcnt, count]

    def add(self, t: float, usage: int, max_usage: int, failcnt: int) -> None:
        b = self._bucket
        if b is None:
            self._bucket = b = [t, usage, max_usage, failcnt, 0]
        else:
            b[1], b[2], b[3] = max(b[1], usage), max(b[2], max_usage), failcnt
        b[4] += 1
        if b[4] >= self.stride:
            self._flush()

    def _flush(self) -> None:
        b, self._bucket = self._bucket, None
        if b is None:
            return
        self.t.append(round(b[0], 3))
        self.usage.append(int(b[1]))
        self.max.append(int(b[2]))
        self.failcnt.append(int(b[3]))
        if len(self.t) >= self.max_points:
            self._halve()

    def _halve(self) -> None:
        pairs = range(0, len(self.t) - 1, 2)
        self.t = [self.t[i] for i in pairs]
        self.usage = [max(self.usage[i], self.usage[i + 1]) for i in pairs]
        self.max = [max(self.max[i], self.max[i + 1]) for i in pairs]
        self.failcnt = [self.failcnt[i + 1] for i in pairs]
        self.stride *= 2

    def to_dict(self) -> dict[str, Any]:
        out = {"t": list(self.t), "usage": list(self.usage), "max": list(self.max),
               "failcnt": list(self.failcnt)}
        if self._bucket is not None:  # the samples not yet folded into a point
            b = self._bucket
            out["t"].append(round(b[0], 3))
            out["usage"].append(int(b[1]))
            out["max"].append(int(b[2]))
            out["failcnt"].append(int(b[3]))
        out["interval"] = INTERVAL * self.stride
        return out


class MemorySampler:
    """Samples ``read()`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, read: Callable[[], Reading], live_file: Path | None = None,
                 interval: float = INTERVAL, extra: dict[str, Any] | None = None) -> None:
        self.read, self.live_file, self.interval = read, live_file, interval
        self.extra = dict(extra or {})
        self.timeline = Timeline()
        self.started = time.monotonic()
        self._high = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        try:
            usage, high, fails = self.read()
        except Exception:  # a vanished cgroup or process: the last points stand
            return
        if usage is None:
            return
        self._high = max(self._high, usage, high or 0)
        with self._lock:
            self.timeline.add(time.monotonic() - self.started, usage, self._high, fails)

    def _run(self) -> None:
        last_write = 0.0
        while not self._stop.wait(self.interval):
            self.sample()
            now = time.monotonic()
            if self.live_file is not None and now - last_write >= LIVE_EVERY:
                last_write = now
                with contextlib.suppress(OSError):
                    self._write_live()

    def _write_live(self) -> None:
        assert self.live_file is not None
        tmp = self.live_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.result()))
        os.replace(tmp, self.live_file)

    def stop(self, high: int | None = None, failcnt: int | None = None) -> dict[str, Any]:
        """Stop sampling. ``high``/``failcnt``: the cgroup's high-water mark and fail count read after
        the replica exited; they close the timeline (the usage itself is gone by then)."""
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            tl = self.timeline
            self._high = max(self._high, high or 0)
            if not tl.t and tl._bucket is None and self._high:  # shorter than one interval
                tl.add(time.monotonic() - self.started, self._high, self._high, failcnt or 0)
            elif tl._bucket is not None:
                tl._bucket[2] = max(tl._bucket[2], self._high)
                tl._bucket[3] = max(tl._bucket[3], failcnt or 0)
            elif tl.t:
                tl.max[-1] = max(tl.max[-1], self._high)
                tl.failcnt[-1] = max(tl.failcnt[-1], failcnt or 0)
        if self.live_file is not None:
            with contextlib.suppress(OSError):
                self._write_live()
        return self.result()

    def result(self) -> dict[str, Any]:
        with self._lock:
            return {**self.timeline.to_dict(), **self.extra}
