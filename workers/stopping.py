"""SIGTERM handling: stop at the next step boundary, or from a watchdog if the main thread is stuck.

The training loop polls :attr:`Stopper.requested` between steps and, when set, calls
:meth:`Stopper.acknowledge`, saves and exits 143. A C extension blocked in a collective (a peer
already gone) or a long first-step compile would keep Python's own handler from running, so the
signal is also delivered through ``signal.set_wakeup_fd`` to a watchdog thread: when the main thread
has not acknowledged within ``grace`` seconds, the watchdog calls ``fallback()`` (which saves the last
completed step under :attr:`lock`, the lock the loop holds while it changes or saves the state) and
ends the process with the code it returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

EXIT_SIGTERM = 143  # 128 + SIGTERM, what a shell reports for a process stopped by SIGTERM


class Stopper:
    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.lock = threading.RLock()
        self._requested = threading.Event()
        self._acknowledged = threading.Event()
        self.fallback: Callable[[], int] = lambda: EXIT_SIGTERM

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def wait_requested(self, timeout: float) -> bool:
        """True when SIGTERM arrives within ``timeout`` seconds (or has arrived already)."""
        return self._requested.wait(timeout)

    def acknowledge(self) -> None:
        self._acknowledged.set()

    def install(self) -> None:
        """Install the SIGTERM handler and the watchdog (call from the main thread)."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.signal(signal.SIGTERM, lambda signum, frame: self._requested.set())
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(read_fd,), name="sigterm-watchdog", daemon=True).start()

    def _watch(self, read_fd: int) -> None:
        while signal.SIGTERM not in os.read(read_fd, 64):
            pass
        self._requested.set()
        if self._acknowledged.wait(self.grace):
            return
        if not self.lock.acquire(timeout=self.grace):
            print("SIGTERM: state busy, exiting without a checkpoint", flush=True)
            os._exit(EXIT_SIGTERM)
        if self._acknowledged.is_set():  # the main thread got there first and is exiting itself
            self.lock.release()
            return
        try:
            code = self.fallback()
        except BaseException as e:  # noqa: BLE001 - the process is going down either way
            print(f"SIGTERM: saving failed: {type(e).__name__}: {e}", flush=True)
            code = EXIT_SIGTERM
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
