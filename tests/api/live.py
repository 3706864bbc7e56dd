"""Serving an app over real HTTP on 127.0.0.1 in a thread (uvicorn), for SDK and CLI tests; and a
real Runtime for a temporary home."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from jobsched.server.auth import load_or_create_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def live_runtime(home: Path, workflows: bool = False) -> Iterator[tuple[str, str, Any]]:
    """A real Runtime (store, local backend, controller) behind the real app, as the server builds
    it (issued tokens, audit log; the workflow routes with ``workflows``): (url, admin token, runtime)."""
    from jobsched.server.main import make_app
    from jobsched.server.runtime import Runtime

    token = load_or_create_token(home)
    rt = Runtime(home)
    rt.start()
    routers = []
    if workflows:
        from jobsched.server.workflow_routes import make_router

        routers.append(make_router(rt))
    try:
        with serve_in_thread(make_app(rt, token, routers)) as url:
            yield url, token, rt
    finally:
        for r in routers:
            r.workflow_controller.stop()
        rt.stop()
