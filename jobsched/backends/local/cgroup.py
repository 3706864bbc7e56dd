"""Memory enforcement for local replicas: cgroup v2, cgroup v1, or an RSS watchdog.

Detection order: a cgroup v2 hierarchy with the memory controller; a writable v1 memory hierarchy;
otherwise the watchdog (the shim polls the process tree's RSS and kills it at the limit). Status
and events say which one was used.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_CANDIDATES = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
PARENT = "jobsched"


@dataclass(frozen=True)
class CgroupDriver:
    kind: str  # cgroup-v2 | cgroup-v1 | watchdog
    root: Path | None
    why: str = ""

    def create(self, name: str, limit: int | None) -> Path | None:
        """Create the replica's cgroup with its hard memory limit (swap disabled)."""
        if self.root is None:
            return None
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        if self.kind == "cgroup-v1":
            if limit is not None:
                _write(path / "memory.limit_in_bytes", str(limit))
                try:  # no swap beyond the limit, where the kernel has swap accounting
                    _write(path / "memory.memsw.limit_in_bytes", str(limit))
                except OSError:
                    pass
        else:
            if limit is not None:
                _write(path / "memory.max", str(limit))
                with contextlib.suppress(OSError):
                    _write(path / "memory.swap.max", "0")
        return path

    def peak(self, path: Path) -> int | None:
        f = path / ("memory.max_usage_in_bytes" if self.kind == "cgroup-v1" else "memory.peak")
        try:
            return int(f.read_text().strip())
        except (OSError, ValueError):
            return None

    def usage(self, path: Path) -> int | None:
        """Current memory use of the cgroup (page cache included, as the limit counts it)."""
        f = path / ("memory.usage_in_bytes" if self.kind == "cgroup-v1" else "memory.current")
        try:
            return int(f.read_text().strip())
        except (OSError, ValueError):
            return None

    def failcnt(self, path: Path) -> int:
        """How often the cgroup hit its limit (v1 ``memory.failcnt``; v2 ``memory.events`` max)."""
        try:
            if self.kind == "cgroup-v1":
                return int((path / "memory.failcnt").read_text().strip())
            for line in (path / "memory.events").read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "max":
                    return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def oom_kills(self, path: Path) -> int:
        f = path / ("memory.oom_control" if self.kind == "cgroup-v1" else "memory.events")
        try:
            for line in f.read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def procs_file(self, path: Path) -> Path:
        return path / "cgroup.procs"

    def remove(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.rmdir()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def detect(prefer: str | None = None) -> CgroupDriver:
    """Find a writable memory cgroup hierarchy. ``prefer='watchdog'`` forces the fallback."""
    if prefer == "watchdog":
        return CgroupDriver("watchdog", None, "forced by configuration")
    problems = []
    for base in V2_CANDIDATES:
        ctrl = base / "cgroup.controllers"
        if ctrl.exists() and "memory" in ctrl.read_text().split():
            root = base / PARENT
            try:
                root.mkdir(exist_ok=True)
                _write(base / "cgroup.subtree_control", "+memory")
                _write(root / "cgroup.subtree_control", "+memory")
                return CgroupDriver("cgroup-v2", root)
            except OSError as e:
                problems.append(f"cgroup v2 at {base} not writable ({e.strerror})")
    if (V1_ROOT / "memory.limit_in_bytes").exists():
        root = V1_ROOT / PARENT
        try:
            root.mkdir(exist_ok=True)
            probe = root / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            _write(probe / "memory.limit_in_bytes", str(1 << 30))
            probe.rmdir()
            return CgroupDriver("cgroup-v1", root)
        except OSError as e:
            problems.append(f"cgroup v1 at {V1_ROOT} not writable ({e.strerror})")
    else:
        problems.append("no cgroup memory controller mounted")
    return CgroupDriver("watchdog", None, "; ".join(problems))


def host_memory() -> int:
    """Physical memory, bounded by our own cgroup's limit when it is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in (Path("/sys/fs/cgroup/memory.max"), V1_ROOT / "memory.limit_in_bytes"):
        try:
            v = f.read_text().strip()
            if v != "max" and int(v) < total:
                total = int(v)
        except (OSError, ValueError):
            continue
    return total
