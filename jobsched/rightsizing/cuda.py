"""The CUDA device model of the estimator: the caching allocator and the CUDA context.

A traced training step gives the sequence of tensor allocations and frees on the device. This
module turns it into the figures ``torch.cuda`` reports for a real run:

* :class:`CachingAllocator` replays the sequence through a model of PyTorch's CUDA caching
  allocator (``c10/cuda/CUDACachingAllocator.cpp``, default settings: no ``max_split_size``, no
  expandable segments, one stream) and reports ``max_memory_allocated`` and
  ``max_memory_reserved``;
* :func:`context_bytes` adds the device memory that lives outside the allocator: the CUDA context
  and the cuBLAS/cuDNN handles and kernels, measured by the probe on a GPU machine
  (:func:`jobsched.rightsizing.baseline.cuda_baseline`) or the fallback constants below.

Every calibrated constant is in this module, with where it comes from. Pure Python, no torch.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30

# -- the caching allocator (constants of c10/cuda/CUDACachingAllocator.cpp) ------------------------
MIN_BLOCK = 512            # kMinBlockSize: every block is a multiple of 512 bytes
SMALL_SIZE = 1 * MiB       # kSmallSize: requests up to 1 MiB come from the small pool
SMALL_BUFFER = 2 * MiB     # kSmallBuffer: a small-pool segment (cudaMalloc) is 2 MiB
LARGE_BUFFER = 20 * MiB    # kLargeBuffer: requests of 1-10 MiB get a 20 MiB segment
MIN_LARGE_ALLOC = 10 * MiB  # kMinLargeAlloc: from here, a segment of the request's own size...
ROUND_LARGE = 2 * MiB      # kRoundLarge: ...rounded up to 2 MiB

# -- the CUDA context: fallbacks when no GPU is here to measure it ---------------------------------
# From the H100 measurement in issue #12 (torch 2.15+cu132, one H100 80GB): the probe (conv, RNNs,
# attention, so CUDA + cuBLAS + cuDNN) measured about 1.17 GiB of device memory outside the
# allocator (the transformer kernel's device figure, 1.3 GiB, minus its ~129 MiB of tensors), and
# the per-model totals spread by about +-15 %, which is what loading cuDNN or not explains. The split
# between the bare context and cuBLAS is an estimate; on a GPU machine the probe measures all three.
CONTEXT_FALLBACK = {"base": 896 * MiB, "cublas": 128 * MiB, "cudnn": 176 * MiB}
# cuBLAS's workspace, allocated through the caching allocator by the first cuBLAS call and kept:
# torch's default (CublasHandlePool.cpp) is 4096 KiB x 8 = 32 MiB on sm90 (H100/H200) and
# 4096 KiB x 2 + 16 KiB x 8 elsewhere; the probe reads torch.backends.cuda.cublas_workspace_size().
CUBLAS_WORKSPACE_FALLBACK = 32 * MiB
# Host RSS of a CUDA PyTorch process (interpreter, torch, the CUDA runtime, cuBLAS/cuDNN host
# side): 1.2-1.6 GB on that H100 machine "whatever the model" (issue #12); 1.5 GiB covers the top.
HOST_BASELINE_FALLBACK = 3 * GiB // 2

# aten ops (overload packet names) that load a library's kernels and handle on CUDA
CUBLAS_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "addr", "dot", "vdot",
                        "_scaled_mm", "_addmm_activation"})
CUDNN_OPS = frozenset({"convolution", "convolution_backward", "cudnn_convolution", "cudnn_batch_norm",
                       "native_batch_norm", "_native_batch_norm_legit", "_cudnn_rnn"})


def libraries(ops: Iterable[str], extra: Iterable[str] = ()) -> frozenset[str]:
    """The libraries a step loads on CUDA, from the aten ops it ran (and ``extra`` seen elsewhere,
    e.g. an RNN traced through its decomposition still runs cuDNN on the real device)."""
    ops = set(ops)
    found = {"base"} | set(extra)
    if ops & CUBLAS_OPS:
        found.add("cublas")
    if ops & CUDNN_OPS:
        found.add("cudnn")
    return frozenset(found)


def with_workspace(events: list[tuple[int, int]], first_seen: dict[str, int],
                   workspace: int) -> list[tuple[int, int]]:
    """The events with cuBLAS's workspace allocated (never freed) where the first cuBLAS op ran."""
    at = [i for op, i in first_seen.items() if op in CUBLAS_OPS]
    if not at or workspace <= 0:
        return events
    i = min(at)
    return [*events[:i], (-1, workspace), *events[i:]]


def context_bytes(libs: Iterable[str], measured: dict[str, int] | None = None) -> int:
    """Device memory outside the caching allocator for a process that loads ``libs``."""
    table = measured or CONTEXT_FALLBACK
    return sum(int(table.get(lib, 0)) for lib in set(libs) | {"base"})


# -- the allocator model ---------------------------------------------------------------------------

def round_size(nbytes: int) -> int:
    """The block size of a request (``round_size``)."""
    return MIN_BLOCK if nbytes < MIN_BLOCK else -(-nbytes // MIN_BLOCK) * MIN_BLOCK


def segment_size(size: int) -> int:
    """The cudaMalloc'ed segment for a request with no cached block to reuse
    (``get_allocation_size``)."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


@dataclass(eq=False)
class Block:
    segment: int
    offset: int
    size: int
    small: bool
    allocated: bool = False
    prev: Block | None = None
    next: Block | None = None

    def key(self) -> tuple[int, int, int]:  # pools are ordered by (size, address)
        return (self.size, self.segment, self.offset)


@dataclass
class CachingAllocator:
    """Best-fit from the pool of the request's size class, split when the remainder is large enough,
    coalesce neighbours on free, never return segments (no ``empty_cache``, no OOM retry)."""

    allocated: int = 0
    reserved: int = 0
    peak_allocated: int = 0
    peak_reserved: int = 0
    segments: int = 0
    _pools: dict[bool, list[tuple[tuple[int, int, int], Block]]] = field(
        default_factory=lambda: {True: [], False: []})
    _ids: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def _insert(self, b: Block) -> None:
        bisect.insort(self._pools[b.small], (b.key(), b))

    def _remove(self, b: Block) -> None:
        pool = self._pools[b.small]
        del pool[bisect.bisect_left(pool, (b.key(),))]

    def malloc(self, nbytes: int) -> Block:
        size = round_size(nbytes)
        small = size <= SMALL_SIZE
        pool = self._pools[small]
        i = bisect.bisect_left(pool, ((size, -1, -1),))
        if i < len(pool):
            block = pool.pop(i)[1]
        else:
            seg = segment_size(size)
            self.reserved += seg
            self.peak_reserved = max(self.peak_reserved, self.reserved)
            block = Block(next(self._ids), 0, seg, small)
        remaining = block.size - size
        if remaining >= MIN_BLOCK if small else remaining > SMALL_SIZE:  # should_split
            rest = Block(block.segment, block.offset + size, remaining, small, prev=block, next=block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next, block.size = rest, size
            self._insert(rest)
        block.allocated = True
        self.allocated += block.size
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        return block

    def free(self, block: Block) -> None:
        block.allocated = False
        self.allocated -= block.size
        for other in (block.prev, block.next):  # try_merge_blocks
            if other is None or other.allocated:
                continue
            self._remove(other)
            if other is block.prev:
                block.offset, block.prev = other.offset, other.prev
                if other.prev is not None:
                    other.prev.next = block
            else:
                block.next = other.next
                if other.next is not None:
                    other.next.prev = block
            block.size += other.size
        self._insert(block)


def replay(events: Iterable[tuple[int, int]]) -> CachingAllocator:
    """Replay ``(key, nbytes)`` allocations and ``(key, -1)`` frees through the allocator model."""
    alloc = CachingAllocator()
    live: dict[int, Block] = {}
    for key, nbytes in events:
        if nbytes < 0:
            block = live.pop(key, None)
            if block is not None:
                alloc.free(block)
        else:
            live[key] = alloc.malloc(nbytes)
    return alloc
