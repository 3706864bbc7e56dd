"""jobsched's rendezvous environment, CPU thread choice and peak-memory reporting (no torch import)."""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _int_env(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}: must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Rendezvous:
    """What jobsched (or torchrun) tells a replica about its gang. Defaults: a single process."""

    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int | None = None
    job: str = ""
    attempt: int = 0
    checkpoint_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Rendezvous:
        env = os.environ if env is None else env
        world = _int_env(env, "WORLD_SIZE", 1, minimum=1)
        rank = _int_env(env, "RANK", 0)
        if rank >= world:
            raise ValueError(f"environment variable RANK: must be < WORLD_SIZE ({world}), got {rank}")
        port = _int_env(env, "MASTER_PORT", 29500, minimum=1)
        if port > 65535:
            raise ValueError(f"environment variable MASTER_PORT: must be <= 65535, got {port}")
        lws = env.get("LOCAL_WORLD_SIZE")
        return cls(
            master_addr=env.get("MASTER_ADDR") or "127.0.0.1", master_port=port, world_size=world,
            rank=rank, local_rank=_int_env(env, "LOCAL_RANK", 0),
            local_world_size=_int_env(env, "LOCAL_WORLD_SIZE", 1, minimum=1) if lws else None,
            job=env.get("JOBSCHED_JOB", ""), attempt=_int_env(env, "JOBSCHED_ATTEMPT", 0),
            checkpoint_dir=env.get("JOBSCHED_CHECKPOINT_DIR") or None,
        )

    @property
    def master_is_local(self) -> bool:
        return self.master_addr in ("127.0.0.1", "localhost", "::1")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by this process's cgroup v2 ``cpu.max`` quota, or None when unlimited/unknown."""
    try:
        rel = next(line.split("::", 1)[1] for line in Path("/proc/self/cgroup").read_text().splitlines()
                   if line.startswith("0::"))
        quota, period = (root / rel.lstrip("/") / "cpu.max").read_text().split()
    except (OSError, StopIteration, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def choose_threads(requested: int, rdzv: Rendezvous, env: Mapping[str, str] | None = None) -> int:
    """Intra-op threads: --threads, else OMP_NUM_THREADS, else the CPUs this replica may use (affinity,
    capped by a cgroup quota), shared with the replicas of the gang that run on the same host."""
    env = os.environ if env is None else env
    if requested > 0:
        return requested
    if env.get("OMP_NUM_THREADS", "").isdigit() and int(env["OMP_NUM_THREADS"]) > 0:
        return int(env["OMP_NUM_THREADS"])
    cpus = float(len(os.sched_getaffinity(0)))
    quota = cgroup_cpu_limit()
    if quota is not None:
        return max(1, math.ceil(min(cpus, quota)))
    sharing = rdzv.local_world_size or (rdzv.world_size if rdzv.master_is_local else 1)
    return max(1, int(cpus // sharing))


def own_peak_rss() -> int:
    """This process's peak RSS: ``VmHWM`` on Linux, because ``ru_maxrss`` carries the launching
    process's peak over ``exec``."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def peak_memory_lines(gpu_peak: int | None = None) -> list[str]:
    """``peak_memory_bytes=N`` (host RSS high-water mark) and, on GPU, ``peak_gpu_memory_bytes=N``."""
    lines = [f"peak_memory_bytes={own_peak_rss()}"]
    if gpu_peak is not None:
        lines.append(f"peak_gpu_memory_bytes={gpu_peak}")
    return lines
