"""The server process: scheduler + backend (the Runtime) + the HTTP API under uvicorn.

One server per ``home``: a lock on ``home/server.lock`` keeps a second one out; ``home/server.pid``
names the running one for ``jobsched server stop``. SIGTERM and SIGINT shut it down cleanly:
uvicorn finishes its requests, then the Runtime stops.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

from jobsched.server.auth import ensure_home, load_or_create_token
from jobsched.server.daemon import PID_FILE

log = logging.getLogger("jobsched.server")

LOCK_FILE = "server.lock"


class ServerStartError(RuntimeError):
    """The server could not start (port taken, another server for this home, bad backend)."""


def _lock_home(home: Path) -> int:
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = (home / PID_FILE).read_text().strip() if (home / PID_FILE).exists() else "?"
        raise ServerStartError(f"another jobsched server already runs for {home} (pid {pid})") from None
    return fd


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections (with proto 0 it
    # does not, and Nagle + delayed ACKs add ~40 ms to every response).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # claim the port now (SO_REUSEADDR lets two unlistened binds share it)
    except OSError as e:
        sock.close()
        raise ServerStartError(f"--port: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _extra_routers(runtime: Any) -> list[Any]:
    if importlib.util.find_spec("jobsched.server.workflow_routes") is None:
        return []
    module = importlib.import_module("jobsched.server.workflow_routes")
    return [module.make_router(runtime)]


def _exit_on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)


def serve(home: Path, host: str, port: int, backend: str = "local",
          backend_options: dict[str, Any] | None = None, runtime_options: dict[str, Any] | None = None,
          max_body: int | None = None) -> None:
    """Run until SIGTERM/SIGINT. Raises :class:`ServerStartError` if it cannot start. Request bodies
    over ``max_body`` bytes (default 1 MiB) get 413."""
    import uvicorn

    from jobsched.server.app import create_app
    from jobsched.server.bodylimit import DEFAULT_MAX_BODY
    from jobsched.server.runtime import Runtime

    home = ensure_home(home.expanduser().resolve())
    lock_fd = _lock_home(home)
    sock = _bind(host, port)
    # uvicorn re-raises the signal after its graceful shutdown; SystemExit lets `finally` run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    pid_path = home / PID_FILE
    runtime = None
    try:
        token = load_or_create_token(home)
        runtime = Runtime(home, backend=backend, backend_options=backend_options or {}, **(runtime_options or {}))
        runtime.start()
        app = create_app(runtime.service, runtime.metrics, token, _extra_routers(runtime),
                         max_body=max_body or DEFAULT_MAX_BODY)
        pid_path.write_text(f"{os.getpid()}\n")
        log.info("jobsched server on http://%s:%d (home %s, backend %s, pid %d)",
                 host, sock.getsockname()[1], home, backend, os.getpid())
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if runtime is not None:
            runtime.stop()
        if pid_path.exists() and pid_path.read_text().strip() == str(os.getpid()):
            pid_path.unlink()
        os.close(lock_fd)
        log.info("jobsched server stopped")


def configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
