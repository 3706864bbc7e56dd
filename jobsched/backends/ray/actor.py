"""The replica actor: one detached, named Ray actor per replica, placed in its gang's bundle.

It runs the replica's command as a child process (its own session, killed with the actor through
``PR_SET_PDEATHSIG``), copies stdout/stderr to one log file (``rank-N.log``, never blocking on a
full disk, as the local backend does), enforces the memory limit (a memory cgroup where the node allows, else an RSS
watchdog) and keeps the result (exit code, reason, peak memory) until the backend collects it, so a
restarted scheduler still learns how a replica ended while it was away.

This module must not import ray at the top: the backend wraps :class:`ReplicaActor` with
``ray.remote`` lazily. It is pickled by reference, so jobsched must be importable on Ray's workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from jobsched.backends.local.cgroup import CgroupDriver, detect
from jobsched.backends.local.shim import (
    PERMANENT_ERRNOS,
    LogSink,
    _kill_cgroup,
    _pump,
    _tree_rss,
    classify_exit,
    proc_start_time,
    write_json_atomic,
)

PR_SET_PDEATHSIG = 1
STREAMS = ("log",)  # stdout and stderr together, written once (rank-N.log)
CGROUP_PREFIX = "ray-"  # + the actor's name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class ReplicaActor:
    """State lives in the actor process; every method is cheap except ``wait_exit`` (it blocks,
    so the actor is created with ``max_concurrency`` > 1)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec  # rank, argv, env, cwd, memory_limit, log_dir, name, enforcement
        self.driver: CgroupDriver = detect(spec.get("enforcement"))
        self.log_dir = Path(spec["log_dir"])
        self.child: subprocess.Popen[bytes] | None = None
        self.peak = 0
        self.result: dict[str, Any] | None = None
        self.done = threading.Event()
        self.started = threading.Event()
        self.stop_reason: str | None = None

    # placement facts --------------------------------------------------------------------------
    def node_info(self, marker: str | None = None, token: str | None = None) -> dict[str, Any]:
        """Where this actor runs, a free port there (for MASTER_PORT), and whether the
        scheduler's home is visible here (the marker file holds ``token``)."""
        import ray

        shared = False
        if marker and token:
            try:
                shared = Path(marker).read_text() == token
            except OSError:
                shared = False
        if not shared:  # keep the logs on this node; the backend mirrors them
            self.log_dir = Path(tempfile.gettempdir()) / "jobsched-ray" / self.spec["name"]
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return {"ip": ip, "node_id": ray.get_runtime_context().get_node_id(),
                "hostname": socket.gethostname(), "port": _free_port(), "shared": shared,
                "log_dir": str(self.log_dir), "enforcement": self.driver.kind,
                "enforcement_detail": self.driver.why}

    # lifecycle --------------------------------------------------------------------------------
    def launch(self, env_overrides: dict[str, str]) -> dict[str, Any]:
        """Start the child in a thread that lives as long as it does (the death signal is tied
        to the thread that forked), and return its pid once it exists."""
        import ray

        env = {**self.spec["env"], **env_overrides}
        gpu_ids = ray.get_gpu_ids()
        if gpu_ids:  # Ray's assignment is the real one on this node
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_cgroups()
        threading.Thread(target=self._run, args=(env,), name="replica", daemon=True).start()
        self.started.wait(30)
        pid = self.child.pid if self.child else None
        return {"pid": pid, "pid_start": proc_start_time(pid) if pid else None}

    def wait_exit(self) -> dict[str, Any]:
        self.done.wait()
        assert self.result is not None
        return self.result

    def status(self) -> dict[str, Any]:
        return {"running": not self.done.is_set(), "peak_memory_bytes": self.peak or None,
                "pid": self.child.pid if self.child else None}

    def terminate(self, reason: str, grace_seconds: float) -> None:
        """SIGTERM the replica's process group, SIGKILL after the grace period."""
        self.stop_reason = self.stop_reason or reason
        self._signal(signal.SIGTERM)
        timer = threading.Timer(grace_seconds, self._signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def read_log(self, stream: str, offset: int, limit: int = 1 << 20) -> bytes:
        if stream not in STREAMS:
            raise ValueError(f"stream: unknown log stream {stream!r} (known: {', '.join(STREAMS)})")
        try:
            with open(self.log_dir / f"rank-{self.spec['rank']}.{stream}", "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except OSError:
            return b""

    def _sweep_cgroups(self) -> None:
        """Remove empty replica cgroups on this node whose actor no longer exists (an actor killed
        under its replica cannot remove its own)."""
        import ray

        if self.driver.root is None:
            return
        for cg in self.driver.root.glob(f"{CGROUP_PREFIX}*"):
            try:
                if self.driver.procs_file(cg).read_text().split():
                    continue
                ray.get_actor(cg.name[len(CGROUP_PREFIX):], namespace=self.spec.get("namespace", "jobsched"))
            except ValueError:  # the actor is gone
                self.driver.remove(cg)
            except OSError:
                continue

    def _signal(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, sig)

    # the replica ------------------------------------------------------------------------------
    def _run(self, env: dict[str, str]) -> None:
        try:
            self.result = self._supervise(env)
        except Exception as e:  # never leave wait_exit hanging
            self.result = {"exit_code": None, "reason": "Error", "message": f"replica actor failed: {e}",
                           "peak_memory_bytes": self.peak or None, "finished_at": time.time()}
        finally:
            self.started.set()
            with contextlib.suppress(OSError):
                write_json_atomic(self.log_dir / f"rank-{self.spec['rank']}.result.json", self.result or {})
            self.done.set()

    def _supervise(self, env: dict[str, str]) -> dict[str, Any]:
        rank, limit = self.spec["rank"], self.spec.get("memory_limit")
        combined = LogSink(self.log_dir / f"rank-{rank}.log")  # never blocks the replica on a full disk
        files = [combined]
        cg = self.driver.create(f"{CGROUP_PREFIX}{self.spec['name']}", limit)
        started = time.time()

        libc = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen in the forked child
        procs = str(self.driver.procs_file(cg)) if cg is not None else None

        def prepare() -> None:  # in the child, before exec: keep it to system calls
            os.setsid()
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if procs is not None:
                fd = os.open(procs, os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)

        try:
            self.child = subprocess.Popen(self.spec["argv"], env=env, cwd=self.spec.get("cwd") or None,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, preexec_fn=prepare, close_fds=True)
        except OSError as e:
            msg = f"cannot start {self.spec['argv'][0]!r}: {e.strerror or e}"
            combined.write((msg + "\n").encode())
            for f in files:
                f.close()
            reason = "StartFailed" if e.errno in PERMANENT_ERRNOS else "Error"  # not retried: same again
            return {"exit_code": 127, "reason": reason, "message": msg, "peak_memory_bytes": None,
                    "started_at": started, "finished_at": time.time(), "enforcement": self.driver.kind}
        self.started.set()
        tail: deque[str] = deque(maxlen=50)
        pumps = [threading.Thread(target=_pump, args=(self.child.stdout, combined, None), daemon=True),
                 threading.Thread(target=_pump, args=(self.child.stderr, combined, tail), daemon=True)]
        for t in pumps:
            t.start()
        watchdog_killed = False
        while self.child.poll() is None:  # sample the peak; enforce the limit without a cgroup
            rss = _tree_rss(self.child.pid)
            self.peak = max(self.peak, rss)
            if cg is None and limit is not None and rss > limit:
                watchdog_killed = True
                self._signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        rc = self.child.wait()
        if cg is not None:
            _kill_cgroup(self.driver, cg)
        for t in pumps:
            t.join(timeout=5)
        return self._outcome(rc, cg, limit, watchdog_killed, "".join(tail), started, files)

    def _outcome(self, rc: int, cg: Path | None, limit: int | None, watchdog_killed: bool, text: str,
                 started: float, files: list[Any]) -> dict[str, Any]:
        exit_code = 128 - rc if rc < 0 else rc
        oom = (cg is not None and self.driver.oom_kills(cg) > 0) or watchdog_killed
        peak = max((self.driver.peak(cg) if cg is not None else None) or 0, self.peak) or None
        reason, msg, peak = classify_exit(rc, oom, text, limit, peak, self.driver.kind,
                                          cgroup_enforced=cg is not None, stop_reason=self.stop_reason,
                                          where=", on Ray")
        if cg is not None:
            self.driver.remove(cg)
        for f in files:
            f.close()
        return {"exit_code": exit_code, "reason": reason, "message": msg, "peak_memory_bytes": peak,
                "started_at": started, "finished_at": time.time(), "enforcement": self.driver.kind}
