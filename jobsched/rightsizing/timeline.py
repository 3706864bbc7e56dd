"""What a replica's memory timeline says: did memory plateau, grow steadily, or spike, and when
was the limit hit. Pure functions over the timeline dict the local shim records
(``{"t", "usage", "max", "failcnt", "interval", "limit", "source"}``, see
``backends/local/sampler.py``); used by the OOM-recovery policy and shown by ``jobsched status``.

Shapes (checked in this order):

* ``short``     fewer than 5 samples (about a second): too short to tell;
* ``spike``     the peak is at least 1.5x the run's typical (median) level, memory was flat before
                it rose, and it stayed above halfway to the peak for at most
                ``max(2 samples, 25 %)`` of the run;
* ``plateau``   the last ``max(1 s, 20 %)`` of the run stayed within a band of its final level
                (band: 3 % of the peak, at least 8 MiB);
* ``growing``   memory rose steadily over the second half of the run (least-squares slope > 0,
                R^2 >= 0.8, a rise of at least 4 bands) and ended near its peak: a leak looks like
                this on every attempt, a big allocation ramp only until it plateaus;
* ``irregular`` anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jobsched.spec.quantity import format_bytes

MIB = 2**20
MIN_SAMPLES = 5  # fewer samples than this: "short", too short to tell a shape
SPIKE_SHARE = 0.25  # a spike stays above half-way to its peak for at most this share of the run
BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class MemoryProfile:
    shape: str  # short | plateau | spike | growing | irregular
    peak: int  # bytes: the high-water mark (catches spikes between samples)
    duration: float  # seconds covered by the samples
    growth_rate: float  # bytes/s over the second half of the run (0 when flat or falling)
    plateau: int | None  # the level of the trailing plateau, when there is one
    limit_hit_at: float | None  # seconds after start when the limit was first reached
    samples: int

    def describe(self) -> str:
        parts = [self.shape]
        if self.plateau is not None:
            parts.append(f"at {format_bytes(self.plateau)}")
        if self.shape == "growing" or self.growth_rate >= MIB:
            parts.append(f"+{format_rate(self.growth_rate)}")
        parts.append(f"peak {format_bytes(self.peak)} in {self.duration:.1f}s")
        if self.limit_hit_at is not None:
            parts.append(f"limit hit at {self.limit_hit_at:.1f}s")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "peak": self.peak, "duration": round(self.duration, 3),
                "growth_rate": round(self.growth_rate, 1), "plateau": self.plateau,
                "limit_hit_at": self.limit_hit_at, "samples": self.samples}


def format_rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / MIB:.0f} MiB/s" if bytes_per_s >= 10 * MIB else f"{bytes_per_s / MIB:.1f} MiB/s"


def _arrays(tl: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(tl.get("t") or [], dtype=np.float64)
    u = np.asarray(tl.get("usage") or [], dtype=np.float64)
    m = np.asarray(tl.get("max") or tl.get("usage") or [], dtype=np.float64)
    f = np.asarray(tl.get("failcnt") or [0] * len(t), dtype=np.int64)
    n = min(len(t), len(u), len(m), len(f))
    return t[:n], u[:n], np.maximum(m[:n], u[:n]), f[:n]


def profile(tl: Mapping[str, Any], limit: int | None = None) -> MemoryProfile:
    """Classify one replica's timeline (``limit`` defaults to the one recorded in it)."""
    t, u, m, f = _arrays(tl)
    limit = limit if limit is not None else tl.get("limit")
    peak = int(m.max()) if len(t) else 0
    hit = _limit_hit(t, m, f, limit)
    keep = len(u)  # the process freeing its memory as it exits (a falling tail) is not the shape
    while keep > max(2, len(u) // 2) and u[keep - 1] < 0.9 * u[keep - 2]:
        keep -= 1
    t, u, m, f = t[:keep], u[:keep], m[:keep], f[:keep]
    n = len(t)
    if n < MIN_SAMPLES:
        return MemoryProfile("short", peak, float(t[-1] - t[0]) if n else 0.0, 0.0, None, hit, n)
    duration = float(t[-1] - t[0])
    interval = float(tl.get("interval") or 0.2)
    band = max(0.03 * peak, 8 * MIB)
    rate, r2 = _trend(t, u)
    # spike: far above the typical level, and for a short time only (the high-water mark catches
    # a spike that fell between two samples)
    typical = float(np.median(u))
    if peak >= 1.5 * max(typical, 1.0):
        half = typical + 0.5 * (peak - typical)
        above = int((u >= half).sum())
        rise = int(np.argmax(m >= half))  # the high-water mark is monotone: the first crossing
        before = u[:max(rise - 2, 0)]  # the level it rose from (the rise itself left out)
        flat = before.size >= 3 and float(np.ptp(before)) <= max(2 * band, 0.25 * (peak - typical))
        if flat and above * interval <= max(2 * interval, SPIKE_SHARE * duration):
            return MemoryProfile("spike", peak, duration, max(rate, 0.0), None, hit, n)
    # trailing plateau: walk back while usage stays within the band of the final level
    level = float(u[-1])
    s = n - 1
    while s > 0 and abs(float(u[s - 1]) - level) <= band:
        s -= 1
    held = float(t[-1] - t[s])
    if n - s >= 3 and held >= max(1.0, 0.2 * duration):
        return MemoryProfile("plateau", peak, duration, max(rate, 0.0), int(u[s:].max()), hit, n)
    if rate > 0 and r2 >= 0.8 and rate * duration / 2 >= 4 * band and u[-1] >= 0.8 * peak:
        return MemoryProfile("growing", peak, duration, rate, None, hit, n)
    return MemoryProfile("irregular", peak, duration, max(rate, 0.0), None, hit, n)


def shown_values(tl: Mapping[str, Any]) -> list[float]:
    """Usage per point, raised where the high-water mark shows a spike between two samples."""
    _, u, m, _ = _arrays(tl)
    if not len(u):
        return []
    jump = np.concatenate([[True], m[1:] > m[:-1]])
    return [float(x) for x in np.where(jump, np.maximum(u, m), u)]


def _trend(t: np.ndarray, u: np.ndarray) -> tuple[float, float]:
    """Least-squares slope (bytes/s) and R^2 over the second half of the run."""
    second = t >= t[0] + 0.5 * (t[-1] - t[0])
    if second.sum() < 3:
        second = np.zeros_like(second)
        second[-3:] = True
    x, y = t[second], u[second]
    if float(np.ptp(x)) == 0.0:
        return 0.0, 0.0
    slope, icept = np.polyfit(x, y, 1)
    ss_res = float(((y - (slope * x + icept)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return float(slope), r2


def _limit_hit(t: np.ndarray, m: np.ndarray, f: np.ndarray, limit: int | None) -> float | None:
    idx = np.nonzero(f > 0)[0]
    if idx.size == 0 and limit:
        idx = np.nonzero(m >= 0.98 * limit)[0]
    return round(float(t[idx[0]]), 2) if idx.size else None


def peak_replica(timelines: Mapping[int, Mapping[str, Any]]) -> tuple[int, Mapping[str, Any]] | None:
    """The rank whose timeline reached the highest memory, with its timeline."""
    best: tuple[int, Mapping[str, Any]] | None = None
    best_peak = -1
    for rank, tl in sorted(timelines.items()):
        mx = max([*(tl.get("max") or []), *(tl.get("usage") or [])], default=0)
        if mx > best_peak:
            best, best_peak = (rank, tl), mx
    return best


def sparkline(values: Sequence[float], width: int = 24, top: float | None = None) -> str:
    """``values`` as ``width`` bars (the largest value of each stretch), scaled to ``top``."""
    if not values:
        return ""
    v = np.asarray(values, dtype=np.float64)
    chunks = np.array_split(v, min(width, len(v)))
    highs = np.array([c.max() for c in chunks])
    top = float(top or highs.max() or 1.0)
    idx = np.clip(np.ceil(highs / top * len(BARS)) - 1, 0, len(BARS) - 1).astype(int)
    return "".join(BARS[i] for i in idx)


def summary(tl: Mapping[str, Any], limit: int | None = None) -> dict[str, Any]:
    """Everything ``jobsched status`` shows of a timeline: the profile, a sparkline scaled to the
    limit, and a short text."""
    p = profile(tl, limit)
    lim = limit if limit is not None else tl.get("limit")
    # scaled to the limit, unless the limit is far above the peak (a measuring retry)
    top = lim if lim and lim <= 2 * p.peak else p.peak
    return {**p.to_dict(), "sparkline": sparkline(shown_values(tl), top=top or None),
            "text": p.describe(), "source": tl.get("source")}
