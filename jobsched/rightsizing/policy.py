"""Memory sizing decisions: at admission, and for the next attempt after one ends.

Pure functions over byte counts; the controller passes everything in (no I/O, no clock).
Formulas and defaults are documented in docs/rightsizing.md:

* admission, Auto:  ``max(declared, estimate * (1 + margin))``; with history, the recommendation
  (it may shrink an over-sized request), or ``estimate * (1 + margin)`` when the estimate alone
  exceeds the recommendation (the configuration grew);
  a pinned limit (``template.resources.limits.memory``) keeps the declared size.
* admission, Fixed: the declared size, with a warning when it is below the estimate.
* after an OOM:     ``max(peak * (1 + margin), previous * growth)``, never the same size again,
  capped at the largest node (and ``maxMemory``); at the cap the job fails with a cap reason.
* after Evicted:    the same size (node pressure is not the job's fault).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jobsched.core.fit import feasible
from jobsched.core.gang import PodGroup, allowed_mask
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import NodeShape
from jobsched.spec.quantity import format_bytes
from jobsched.spec.status import AttemptReason

MIB = 2**20
MIN_STEP = 64 * MIB  # the smallest increase after an OOM (covers previous == 0)

# Which replica's exit decides what the gang's attempt ended with (first match wins).
_PRECEDENCE = (
    AttemptReason.OOM_KILLED,
    AttemptReason.IN_PROGRAM_OOM,
    AttemptReason.CUDA_OOM,
    AttemptReason.EVICTED,
    AttemptReason.ERROR,
    AttemptReason.START_FAILED,
    AttemptReason.NODE_LOST,
    AttemptReason.LOST,
    AttemptReason.PREEMPTED,
    AttemptReason.CANCELLED,
    AttemptReason.COMPLETED,
)


@dataclass(frozen=True)
class SizingDecision:
    """``memory`` is the per-replica request in bytes; None means stop (``reason`` says why)."""

    memory: int | None
    reason: str
    capped: bool = False
    warning: str | None = None
    gpu_memory: int | None = None  # InProgramOOM on a GPU: the GPU memory the next attempt needs
    batch_hint: int | None = None  # InProgramOOM at the cap: a per-replica batch size that may fit


def round_up(n: float, unit: int = MIB) -> int:
    """Round a size up to a whole number of ``unit`` (MiB by default)."""
    return int(math.ceil(n / unit)) * unit


def memory_cap(node_memories: Sequence[int], max_memory: int | None = None) -> int:
    """The largest size any attempt may get: the largest node that could host a replica,
    and the job's ``rightSizing.maxMemory`` when set."""
    if not node_memories:
        raise ValueError("memory_cap: no node could ever host the job")
    cap = max(node_memories)
    return min(cap, max_memory) if max_memory is not None else cap


def largest_host_memory(table: NodeTable, group: PodGroup, shapes: Sequence[NodeShape] = ()) -> int | None:
    """The memory of the largest node, existing (``table``) or provisionable (``shapes``), that could
    host one replica of ``group`` were memory no object (selector, GPU model, cpu and GPUs fit on
    the empty node). None: no node ever could. Feed it to :func:`memory_cap`."""
    empty = table.emptied()
    req = group.request.with_memory(0)
    mask = allowed_mask(empty, group) & feasible(empty, req)
    sizes = [int(empty.mem_cap[mask].max())] if mask.any() else []
    for sh in shapes:
        r = sh.resources
        if sh.max_count < 1 or r.cpu_milli < req.cpu_milli or r.gpus < (req.gpus if req.gpu_milli >= 1000 else
                                                                         min(req.gpus, 1)):
            continue
        if any(sh.labels.get(k) != v for k, v in group.node_selector.items()):
            continue
        if req.gpus and group.gpu_models and sh.gpu_model not in group.gpu_models:
            continue
        if req.gpus and req.gpu_memory and sh.gpu_memory and req.device_bytes(sh.gpu_memory) < req.gpu_memory:
            continue
        sizes.append(r.memory)
    return max(sizes) if sizes else None


def _check(**values: int | float | None) -> None:
    for name, v in values.items():
        if v is not None and v < 0:
            raise ValueError(f"{name} must not be negative, got {v}")


def admission_memory(
    *,
    declared: int,
    estimate: int | None,
    recommended: int | None,
    margin: float,
    pinned_limit: int | None,
    auto: bool,
    cap: int,
    max_memory: int | None = None,
) -> SizingDecision:
    """The per-replica memory request of a job's first attempt. ``cap``: see :func:`memory_cap`
    (``max_memory``, when given, lowers it further)."""
    _check(declared=declared, estimate=estimate, recommended=recommended, margin=margin,
           pinned_limit=pinned_limit, cap=cap, max_memory=max_memory)
    what = "the largest node"
    if max_memory is not None and max_memory < cap:
        cap, what = max_memory, "rightSizing.maxMemory"
    est_m = round_up(estimate * (1 + margin)) if estimate else None
    if pinned_limit is not None:
        size = declared or pinned_limit
        warn = None
        if estimate and estimate > pinned_limit:
            warn = (f"pinned limit {format_bytes(pinned_limit)} is below the estimate "
                    f"{format_bytes(estimate)}: the job may be OOM-killed")
        if size > cap:
            return SizingDecision(None, f"pinned size {format_bytes(size)} exceeds {what} "
                                        f"({format_bytes(cap)})")
        return SizingDecision(size, f"hard limit pinned by the user: keep the declared "
                                    f"{format_bytes(size)}", warning=warn)
    if not auto:
        warn = None
        if estimate and declared < estimate:
            warn = (f"declared {format_bytes(declared)} is below the estimate {format_bytes(estimate)}: "
                    "admitted as asked (memoryPolicy Fixed); it will be resized after an OOM")
        if declared > cap:
            return SizingDecision(None, f"declared {format_bytes(declared)} exceeds {what} "
                                        f"({format_bytes(cap)})")
        return SizingDecision(declared, f"memoryPolicy Fixed: declared {format_bytes(declared)}",
                              warning=warn)
    # Auto
    if recommended is not None:
        # Measured history wins over the model, unless the estimate alone exceeds it: then the
        # configuration has likely grown since the recorded runs.
        size, why = recommended, f"history recommends {format_bytes(recommended)}"
        if estimate and est_m is not None and estimate > recommended:
            size, why = est_m, (f"estimate {format_bytes(estimate)} + {margin:.0%} = {format_bytes(est_m)}: "
                                f"the estimate exceeds the history recommendation {format_bytes(recommended)}")
        if size < declared:
            why += f" (shrunk from declared {format_bytes(declared)})"
    elif est_m is not None and est_m > declared:
        size, why = est_m, (f"estimate {format_bytes(estimate)} + {margin:.0%} = {format_bytes(est_m)} "
                            f"is above declared {format_bytes(declared)}")
    else:
        size = declared
        why = (f"declared {format_bytes(declared)} covers the estimate {format_bytes(estimate)} + {margin:.0%}"
               if estimate else f"no estimate or history: declared {format_bytes(declared)}")
    if size <= cap:
        return SizingDecision(size, f"memoryPolicy Auto: {why}")
    need = max(estimate or 0, declared if recommended is None else 0)
    if need > cap:
        return SizingDecision(None, f"needs {format_bytes(need)} per replica, more than {what} "
                                    f"({format_bytes(cap)}): {why}")
    return SizingDecision(cap, f"memoryPolicy Auto: {why}; capped at {what} "
                               f"{format_bytes(cap)}", capped=True,
                          warning=f"the margin was cut to fit {what} ({format_bytes(cap)})")


def _grow(previous: int, peak: int | None, margin: float, growth: float) -> int:
    target = max(peak * (1 + margin) if peak else 0.0, previous * growth, previous + MIN_STEP)
    return round_up(target)


def next_attempt_memory(
    *,
    reason: str,
    previous: int,
    observed_peak: int | None,
    margin: float,
    growth: float,
    cap: int,
    max_memory: int | None,
    device: str = "host",
    gpu_memory: int | None = None,
    gpu_cap: int | None = None,
    batch_size: int | None = None,
    batch_hint: int | None = None,
) -> SizingDecision:
    """The per-replica memory of the next attempt after one ended with ``reason``.

    ``gpu_*``/``batch_*`` only matter for CudaOOM (or InProgramOOM with ``device="gpu"``):
    ``gpu_memory`` is the device memory the replica had (its share, or the whole GPU it ran on),
    ``gpu_cap`` the largest GPU the job could get. The next GPU-memory request is larger than
    ``gpu_memory``: a bigger share, a whole GPU, or a GPU model with more memory.
    """
    _check(previous=previous, observed_peak=observed_peak, cap=cap, max_memory=max_memory,
           gpu_memory=gpu_memory, gpu_cap=gpu_cap)
    if growth <= 1:
        raise ValueError(f"growth must be greater than 1, got {growth}")
    limit = min(cap, max_memory) if max_memory is not None else cap
    what = "largest node" if max_memory is None or cap <= max_memory else "rightSizing.maxMemory"
    r = AttemptReason(reason)
    if r is AttemptReason.EVICTED:
        return SizingDecision(previous, f"Evicted by node memory pressure: rescheduled at the same size "
                                        f"{format_bytes(previous)}")
    if r is AttemptReason.CUDA_OOM or (r is AttemptReason.IN_PROGRAM_OOM and device == "gpu"):
        return _gpu_oom(previous, observed_peak, margin, growth, gpu_memory, gpu_cap, batch_size,
                        batch_hint)
    if r not in (AttemptReason.OOM_KILLED, AttemptReason.IN_PROGRAM_OOM):
        return SizingDecision(previous, f"attempt ended with {r.value}: same size {format_bytes(previous)}")
    label = "OOMKilled at the memory limit" if r is AttemptReason.OOM_KILLED else (
        "InProgramOOM (the program raised MemoryError)")
    seen = f", observed peak {format_bytes(observed_peak)}" if observed_peak else ""
    if previous >= limit:
        return SizingDecision(None, f"{label} at {format_bytes(previous)}{seen}, which is already the cap "
                                    f"({what}, {format_bytes(limit)}): cannot grow further",
                              capped=True, batch_hint=batch_hint)
    target = _grow(previous, observed_peak, margin, growth)
    why = (f"{label} at {format_bytes(previous)}{seen}: next attempt max(peak x {1 + margin:g}, "
           f"previous x {growth:g}) = {format_bytes(target)}")
    if target > limit:
        return SizingDecision(limit, f"{why}, capped at the {what} ({format_bytes(limit)}): last try",
                              capped=True)
    return SizingDecision(target, why)


GPU_OOM_HINT = ("lower the per-replica batch size (with gradient accumulation to keep the global "
                "batch), or use activation checkpointing")


def _gpu_oom(previous: int, peak: int | None, margin: float, growth: float, gpu_memory: int | None,
             gpu_cap: int | None, batch_size: int | None, batch_hint: int | None) -> SizingDecision:
    have = f" with {format_bytes(gpu_memory)} of GPU memory" if gpu_memory else ""
    seen = f", device peak {format_bytes(peak)}" if peak else ""
    if gpu_memory and gpu_cap and gpu_cap > gpu_memory:
        need = min(_grow(gpu_memory, peak, margin, growth), gpu_cap)
        return SizingDecision(previous, f"CUDA out of memory{have}{seen}: next attempt asks for "
                                        f"{format_bytes(need)} per GPU (max(device peak x {1 + margin:g}, "
                                        f"previous x {growth:g}), at most the largest GPU "
                                        f"{format_bytes(gpu_cap)})", gpu_memory=need)
    hint = batch_hint
    if hint is None and batch_size and gpu_memory and peak:
        hint = max(1, int(batch_size * gpu_memory / (peak * (1 + margin))))
    if hint is None and batch_size:
        hint = max(1, int(batch_size / growth))
    where = (f"no larger GPU is available (largest {format_bytes(gpu_cap)})" if gpu_cap and gpu_memory
             else "no larger GPU is known")
    tail = f"try a per-replica batch size of at most {hint}, or " if hint else "to fit, "
    return SizingDecision(None, f"CUDA out of memory{have}{seen}: {where}; {tail}{GPU_OOM_HINT}",
                          capped=True, batch_hint=hint)


def gang_outcome(exits: Sequence[tuple[str, int | None]]) -> tuple[str, int | None]:
    """The reason a gang's attempt ended and its peak, from each replica's (reason, peak).

    One replica's OOM decides for the whole gang (the others end GangStopped); the peak is the
    largest any replica reported."""
    reasons = {AttemptReason(r) for r, _ in exits}
    peaks = [p for _, p in exits if p is not None]
    peak = max(peaks) if peaks else None
    for r in _PRECEDENCE:
        if r in reasons:
            return r.value, peak
    return AttemptReason.GANG_STOPPED.value, peak
