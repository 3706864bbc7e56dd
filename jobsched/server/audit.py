"""The audit log: ``$JOBSCHED_HOME/audit.log``, append-only JSON lines (mode 0600), one per
mutating call: who (token name, role), what (method, path, object), when, from where (client
address), outcome (HTTP status). Read back, newest last, by ``GET /v1/audit`` (admin)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("jobsched.audit")

AUDIT_FILE = "audit.log"


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._fd = fd

    def write(self, **entry: Any) -> None:
        """Append one line. A failure (disk full) is logged, never raised into the request."""
        now = time.time()
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
                **entry}
        data = (json.dumps(line, separators=(",", ":"), default=str) + "\n").encode()
        try:
            with self._lock:
                os.write(self._fd, data)  # O_APPEND: each line lands whole at the end
        except OSError as e:
            log.error("audit: cannot write %s: %s (entry: %s)", self.path, e.strerror, data.decode().strip())

    def tail(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries, oldest first (reads backwards from the end, not the whole file)."""
        if limit <= 0:
            return []
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            pos, buf = f.tell(), b""
            while pos > 0 and buf.count(b"\n") <= limit:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
        lines = [ln for ln in buf.split(b"\n") if ln.strip()][-limit:]
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:  # a torn line (crash mid-write): shown, not hidden
                out.append({"time": "?", "method": "?", "path": "?", "status": 0, "raw": ln.decode(errors="replace")})
        return out

    def close(self) -> None:
        os.close(self._fd)
