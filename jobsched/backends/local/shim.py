"""The replica shim (like containerd-shim): one small process per replica, in its own session.

It starts the replica in its memory cgroup, copies stdout/stderr to log files, waits for it, and
writes ``result.json`` with the exit code, the reason (Completed, Error, OOMKilled, InProgramOOM,
CudaOOM), the peak memory (and, after a CUDA OOM, the device peak) and the enforcement used. Because the shim outlives the server, a server killed
with SIGKILL loses nothing: on restart the backend re-adopts live shims and reads finished results.

Run as ``python -m jobsched.backends.local.shim SPEC.json``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from jobsched.backends.local.cgroup import CgroupDriver
from jobsched.backends.local.sampler import MemorySampler

CUDA_OOM = re.compile(r"CUDA out of memory|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED|"
                      r"cuda\.OutOfMemoryError", re.IGNORECASE)
_SIZE = r"([\d.]+) ([KMGT]i)?B"
_UNITS = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
IN_PROGRAM_OOM = re.compile(
    r"MemoryError|CUDA out of memory|OutOfMemoryError|std::bad_alloc|Cannot allocate memory|"
    r"out of memory", re.IGNORECASE)
PERMANENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.EISDIR,
                    errno.ENAMETOOLONG, errno.ELOOP}


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _pump(src: Any, files: list[Any], tail: deque[str] | None) -> None:
    for line in iter(src.readline, b""):
        for f in files:
            f.write(line)
            f.flush()
        if tail is not None:
            tail.append(line.decode("utf-8", "replace"))
    src.close()


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            total += q.memory_info().rss
    return total


def run(spec: dict[str, Any]) -> dict[str, Any]:
    driver = CgroupDriver(spec["enforcement"], Path(spec["cgroup_root"]) if spec["cgroup_root"] else None)
    cg = Path(spec["cgroup"]) if spec.get("cgroup") else None
    limit: int | None = spec.get("memory_limit")
    log_dir = Path(spec["log_dir"])
    rank = spec["rank"]
    combined = open(log_dir / f"rank-{rank}.log", "ab")
    out = open(log_dir / f"rank-{rank}.stdout", "ab")
    err = open(log_dir / f"rank-{rank}.stderr", "ab")

    def enter_cgroup() -> None:
        os.setsid()
        if cg is not None:
            with open(driver.procs_file(cg), "w") as f:
                f.write(str(os.getpid()))

    started = time.time()
    try:
        child = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec.get("cwd") or None,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                 preexec_fn=enter_cgroup, close_fds=True)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in argv or env
        msg = f"cannot start {spec['argv'][0]!r}: {getattr(e, 'strerror', None) or e}"
        combined.write((msg + "\n").encode())
        # Missing, not executable, not a program, no such working dir: the same on every retry.
        permanent = isinstance(e, ValueError) or e.errno in PERMANENT_ERRNOS
        return {"exit_code": 126 if getattr(e, "errno", None) == errno.EACCES else 127,
                "reason": "StartFailed" if permanent else "Error", "message": msg,
                "peak_memory_bytes": None, "started_at": started, "finished_at": time.time()}
    write_json_atomic(Path(spec["pid_file"]), {"child_pid": child.pid,
                                               "child_start": proc_start_time(child.pid),
                                               "shim_pid": os.getpid()})
    tail: deque[str] = deque(maxlen=50)
    pumps = [threading.Thread(target=_pump, args=(child.stdout, [combined, out], None), daemon=True),
             threading.Thread(target=_pump, args=(child.stderr, [combined, err], tail), daemon=True)]
    for t in pumps:
        t.start()

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    if cg is not None:
        def read() -> tuple[int | None, int | None, int]:
            return driver.usage(cg), driver.peak(cg), driver.failcnt(cg)
    else:
        def read() -> tuple[int | None, int | None, int]:
            return _tree_rss(child.pid), None, 0
    sampler = MemorySampler(read, log_dir / f"rank-{rank}.memory.json",
                            extra={"limit": limit, "source": driver.kind})
    sampler.start()

    watchdog_peak = 0
    watchdog_killed = False
    if driver.kind == "watchdog" and limit is not None:
        while child.poll() is None:
            rss = _tree_rss(child.pid)
            watchdog_peak = max(watchdog_peak, rss)
            if rss > limit:
                watchdog_killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if cg is not None:  # leftovers of the replica (daemonized grandchildren) die with it
        _kill_cgroup(driver, cg)
    timeline = sampler.stop(high=driver.peak(cg) if cg is not None else watchdog_peak,
                            failcnt=driver.failcnt(cg) if cg is not None else int(watchdog_killed))
    for t in pumps:
        t.join(timeout=5)
    rc = child.returncode
    exit_code = 128 - rc if rc < 0 else rc
    oom = (cg is not None and driver.oom_kills(cg) > 0) or watchdog_killed
    peak = driver.peak(cg) if cg is not None else None
    peak = max(peak or 0, watchdog_peak, usage.ru_maxrss * 1024) or None
    text = "".join(tail)
    reason, msg, peak = classify_exit(rc, oom, text, limit, peak, driver.kind,
                                      cgroup_enforced=driver.kind != "watchdog")
    device = device_peak(text) if reason == "CudaOOM" else None
    if cg is not None:
        driver.remove(cg)
    for f in (combined, out, err):
        f.close()
    return {"exit_code": exit_code, "reason": reason, "message": msg, "peak_memory_bytes": peak,
            "started_at": started, "finished_at": time.time(), "enforcement": driver.kind,
            "timeline": timeline, "device_peak_bytes": device}


def classify_exit(rc: int, oom: bool, text: str, limit: int | None, peak: int | None, kind: str,
                  cgroup_enforced: bool, stop_reason: str | None = None, where: str = ""
                  ) -> tuple[str, str, int | None]:
    """(reason, message, peak) for a replica that exited with return code ``rc`` (negative: signal).

    OOMKilled when the memory limit killed it (a cgroup's peak is then at least the limit), Completed
    on 0, ``stop_reason`` when jobsched stopped it, CudaOOM when its stderr tail shows a CUDA
    out-of-memory error, InProgramOOM for another out-of-memory error the program raised itself,
    else Error. Shared by every backend that runs
    replicas as processes (local shim, Ray actor)."""
    exit_code = 128 - rc if rc < 0 else rc
    if oom and rc != 0:
        if cgroup_enforced and limit is not None:
            peak = max(peak or 0, limit)
        return "OOMKilled", f"memory limit {limit} bytes exceeded ({kind}{where})", peak
    if rc == 0:
        return "Completed", "", peak
    if stop_reason is not None:
        return stop_reason, f"stopped ({stop_reason}), exit code {exit_code}", peak
    if CUDA_OOM.search(text):
        return "CudaOOM", _last_line(text, CUDA_OOM), peak
    if IN_PROGRAM_OOM.search(text):
        return "InProgramOOM", _last_line(text, IN_PROGRAM_OOM), peak
    return "Error", f"exit code {exit_code}" + (f" (signal {-rc})" if rc < 0 else ""), peak


def device_peak(text: str) -> int | None:
    """The GPU memory a replica that died of a CUDA OOM needed, from its output: the device peak the
    ``workers`` runtime prints (``device_peak_bytes=N``) or, without it, what torch's message says the
    process held ("this process has X memory in use"), plus the allocation that failed ("Tried to
    allocate Y"). None when neither is there."""
    held = None
    m = re.findall(r"device_peak_bytes=(\d+)", text)
    if m:
        held = int(m[-1])
    else:
        m2 = re.findall(r"this process has " + _SIZE + " memory in use", text)
        if m2:
            held = _bytes(*m2[-1])
    if held is None:
        return None
    tried = re.findall(r"Tried to allocate " + _SIZE, text)
    return held + (_bytes(*tried[-1]) if tried else 0)


def _bytes(num: str, unit: str) -> int:
    return int(float(num) * _UNITS[unit or None])


def _last_line(text: str, pat: re.Pattern[str]) -> str:
    for line in reversed(text.splitlines()):
        if pat.search(line):
            return line.strip()[:300]
    return ""


def _kill_cgroup(driver: CgroupDriver, cg: Path) -> None:
    try:
        pids = [int(p) for p in driver.procs_file(cg).read_text().split()]
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        try:
            if not driver.procs_file(cg).read_text().split():
                return
        except OSError:
            return
        time.sleep(0.02)


def main() -> None:
    spec_path = Path(sys.argv[1])
    spec = json.loads(spec_path.read_text())
    result = run(spec)
    write_json_atomic(Path(spec["result_file"]), result)
    resource.getrusage(resource.RUSAGE_SELF)


if __name__ == "__main__":
    main()
