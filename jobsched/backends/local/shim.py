"""The replica shim (like containerd-shim): one small process per replica, in its own session.

It starts the replica in its memory cgroup, copies stdout/stderr to one log file (``rank-N.log``,
never blocking the replica: on a full disk output is dropped with a marker line), waits for it, and
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


class LogSink:
    """The replica's one log file (stdout and stderr combined, ``rank-N.log``). A write never blocks
    and never raises: on a full disk (any OSError) the output is dropped and counted, the pumps keep
    draining the pipes so the replica never blocks on them, and the first write that succeeds again
    (or the close) is preceded by one marker line saying how much was lost."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()
        self.dropped = 0
        self.dropped_total = 0
        self.why = ""
        self.at_line_start = True

    def _write(self, data: bytes) -> int:
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError as e:
            self.why = e.strerror or str(e)
        if done:
            self.at_line_start = data[done - 1:done] == b"\n"
        return done

    def _marker(self) -> bool:
        line = ("" if self.at_line_start else "\n") + \
            f"[jobsched] {self.dropped} bytes of output dropped: {self.why}\n"
        line_b = line.encode()
        if self._write(line_b) < len(line_b):
            return False
        self.dropped = 0
        return True

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.dropped and not self._marker():
                self.dropped += len(data)
                self.dropped_total += len(data)
                return
            lost = len(data) - self._write(data)
            self.dropped += lost
            self.dropped_total += lost

    def close(self) -> None:
        with self.lock:
            if self.dropped:
                self._marker()
            os.close(self.fd)


def _pump(src: Any, sink: LogSink, tail: deque[str] | None) -> None:
    for line in iter(lambda: src.readline(1 << 16), b""):  # bounded: a line without newline too
        sink.write(line)
        if tail is not None:
            tail.append(line.decode("utf-8", "replace"))
    src.close()


def _tree_rss(pid: int) -> int:
    return _tree_memory(pid)[0]


def _tree_memory(pid: int) -> tuple[int, int]:
    """(RSS now, high-water RSS) of ``pid`` and its descendants, each summed over the tree. The
    high-water mark (``VmHWM``) keeps a spike between two samples, and is the processes' own, unlike
    ``wait4``'s ``ru_maxrss``, which carries the launcher's peak over ``exec`` (a replica of a 0.3 GB
    program reported the 0.7 GB of the server process that started it)."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    rss = hwm = 0
    for q in procs:
        now, high = _proc_memory(q)
        rss, hwm = rss + now, hwm + high
    return rss, hwm


def _proc_memory(q: Any) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process from /proc (one read); psutil's RSS for both elsewhere."""
    import psutil

    try:
        with open(f"/proc/{q.pid}/status", encoding="ascii") as f:
            kb = {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in f if ln.startswith(("VmRSS:", "VmHWM:")))}
        return kb["VmRSS"] * 1024, kb["VmHWM"] * 1024
    except (OSError, KeyError, ValueError):
        with contextlib.suppress(psutil.Error):
            rss = int(q.memory_info().rss)
            return rss, rss
        return 0, 0


def run(spec: dict[str, Any]) -> dict[str, Any]:
    driver = CgroupDriver(spec["enforcement"], Path(spec["cgroup_root"]) if spec["cgroup_root"] else None)
    cg = Path(spec["cgroup"]) if spec.get("cgroup") else None
    limit: int | None = spec.get("memory_limit")
    log_dir = Path(spec["log_dir"])
    rank = spec["rank"]
    combined = LogSink(log_dir / f"rank-{rank}.log")  # each log written once; stderr's tail in memory

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
        combined.close()
        # Missing, not executable, not a program, no such working dir: the same on every retry.
        permanent = isinstance(e, ValueError) or e.errno in PERMANENT_ERRNOS
        return {"exit_code": 126 if getattr(e, "errno", None) == errno.EACCES else 127,
                "reason": "StartFailed" if permanent else "Error", "message": msg,
                "peak_memory_bytes": None, "started_at": started, "finished_at": time.time()}
    try:
        write_json_atomic(Path(spec["pid_file"]), {"child_pid": child.pid,
                                                   "child_start": proc_start_time(child.pid),
                                                   "shim_pid": os.getpid()})
    except OSError as e:  # e.g. a full disk: a replica the server cannot find must not run on
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        combined.close()
        return {"exit_code": 1, "reason": "Error", "message": f"cannot record the replica's pid: {e}",
                "peak_memory_bytes": None, "started_at": started, "finished_at": time.time()}
    tail: deque[str] = deque(maxlen=50)
    pumps = [threading.Thread(target=_pump, args=(child.stdout, combined, None), daemon=True),
             threading.Thread(target=_pump, args=(child.stderr, combined, tail), daemon=True)]
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
            nonlocal hwm
            rss, high = _tree_memory(child.pid)
            hwm = max(hwm, high)
            return rss, hwm, 0
    hwm = 0  # without a cgroup: the replica tree's own high-water RSS, as last seen alive
    sampler = MemorySampler(read, log_dir / f"rank-{rank}.memory.json",
                            extra={"limit": limit, "source": driver.kind})
    sampler.start()

    watchdog_peak = 0
    watchdog_killed = False
    if driver.kind == "watchdog" and limit is not None:
        # waitid(WNOWAIT), not poll(): poll() reaps the child, and the wait4 below then failed with
        # ECHILD, so every replica that exited on its own under the watchdog was lost with its shim.
        while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            rss, high = _tree_memory(child.pid)
            watchdog_peak = max(watchdog_peak, rss, high)
            if rss > limit:
                watchdog_killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    _, status, _usage = os.wait4(child.pid, 0)
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
    # The cgroup's own peak; without one, the tree's high-water RSS (never wait4's ru_maxrss).
    peak = driver.peak(cg) if cg is not None else (max(watchdog_peak, hwm) or None)
    text = "".join(tail)
    reason, msg, peak = classify_exit(rc, oom, text, limit, peak, driver.kind,
                                      cgroup_enforced=driver.kind != "watchdog")
    device = device_peak(text) if reason == "CudaOOM" else None
    if cg is not None:
        driver.remove(cg)
    combined.close()
    return {"exit_code": exit_code, "reason": reason, "message": msg, "peak_memory_bytes": peak,
            "started_at": started, "finished_at": time.time(), "enforcement": driver.kind,
            "timeline": timeline, "device_peak_bytes": device, "log_dropped_bytes": combined.dropped_total}


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


RESERVE = 1 << 16


def reserve_result(path: Path) -> Path | None:
    """Space set aside, before the replica starts, for its result: a full disk must not turn a
    finished replica into a vanished one (``Lost``)."""
    spare = path.with_suffix(path.suffix + ".reserve")
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.posix_fallocate(fd, 0, RESERVE)
        finally:
            os.close(fd)
    except OSError:
        spare.unlink(missing_ok=True)
        return None
    return spare


def write_result(path: Path, result: dict[str, Any], spare: Path | None) -> None:
    try:
        write_json_atomic(path, result)
    except OSError:
        if spare is None:
            raise
        small = {k: v for k, v in result.items() if k != "timeline"}  # fits the reserve
        data = json.dumps(small).encode()[:RESERVE]
        fd = os.open(spare, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)  # into blocks allocated already: needs no free space
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        os.replace(spare, path)
        return
    if spare is not None:
        spare.unlink(missing_ok=True)


def main() -> None:
    spec_path = Path(sys.argv[1])
    spec = json.loads(spec_path.read_text())
    spare = reserve_result(Path(spec["result_file"]))
    result = run(spec)
    write_result(Path(spec["result_file"]), result, spare)
    resource.getrusage(resource.RUSAGE_SELF)


if __name__ == "__main__":
    main()
