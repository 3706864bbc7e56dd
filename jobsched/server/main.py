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
from jobsched.store.integrity import StoreDamaged

__all__ = ["ServerStartError", "StoreDamaged", "serve"]

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


def make_app(runtime: Any, token: str, extra_routers: list[Any], max_body: int | None = None) -> Any:
    """The API over ``runtime``: ``token`` is the admin; the issued tokens live in its store, and
    the audit log in its home."""
    from jobsched.server.app import create_app
    from jobsched.server.audit import AUDIT_FILE, AuditLog
    from jobsched.server.bodylimit import DEFAULT_MAX_BODY
    from jobsched.server.tenancy import TokenRegistry
    from jobsched.store.tokens import TokenTable

    registry, audit = TokenRegistry(token, TokenTable(runtime.store)), AuditLog(runtime.home / AUDIT_FILE)
    return create_app(runtime.service, runtime.metrics, token, extra_routers, registry, audit,
                      max_body=max_body or DEFAULT_MAX_BODY)


def _check_tls(cert: Path, key: Path) -> None:
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ServerStartError(f"--tls-cert/--tls-key: cannot load {cert} and {key}: {e}") from None


def _exit_on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)


def _store_action(home: Path, action: tuple[str, Path | None]) -> None:
    """--repair, --reset or --restore-backup FILE, with this home locked (no server runs)."""
    from jobsched.store import repair

    what, path = action
    try:
        if what == "repair":
            summary = repair.repair(home)
        elif what == "reset":
            summary = repair.reset(home)
        else:
            assert path is not None
            summary = repair.restore(home, path)
    except ValueError as e:
        raise ServerStartError(str(e)) from None
    except OSError as e:
        raise ServerStartError(f"--{what}: {e}") from None
    log.warning("%s", summary)


def serve(home: Path, host: str, port: int, backend: str = "local",
          backend_options: dict[str, Any] | None = None, runtime_options: dict[str, Any] | None = None,
          tls: tuple[Path, Path] | None = None, store_action: tuple[str, Path | None] | None = None,
          max_body: int | None = None) -> None:
    """Run until SIGTERM/SIGINT (HTTPS with ``tls`` = (cert, key)). Raises :class:`ServerStartError`
    if it cannot start, and :class:`StoreDamaged` if the store is damaged (``store_action`` is the
    way out). Request bodies over ``max_body`` bytes (default 1 MiB) get 413."""
    import uvicorn

    from jobsched.server.bodylimit import DEFAULT_MAX_BODY
    from jobsched.server.filemodes import secure_home
    from jobsched.server.runtime import Runtime

    if tls:
        _check_tls(*tls)
    home = ensure_home(home.expanduser().resolve())
    lock_fd = _lock_home(home)
    try:
        if store_action is not None:
            _store_action(home, store_action)
        sock = _bind(host, port)
    except BaseException:
        os.close(lock_fd)
        raise
    # uvicorn re-raises the signal after its graceful shutdown; SystemExit lets `finally` run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    pid_path = home / PID_FILE
    runtime = None
    try:
        token = load_or_create_token(home)
        runtime = Runtime(home, backend=backend, backend_options=backend_options or {}, **(runtime_options or {}))
        runtime.start()
        app = make_app(runtime, token, _extra_routers(runtime), max_body=max_body or DEFAULT_MAX_BODY)
        pid_path.write_text(f"{os.getpid()}\n")
        secure_home(home)  # once the store made state.db (SQLite gives -wal/-shm the same mode)
        log.info("jobsched server on %s://%s:%d (home %s, backend %s, pid %d)", "https" if tls else "http",
                 host, sock.getsockname()[1], home, backend, os.getpid())
        ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, **ssl)
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
