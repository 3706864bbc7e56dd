"""A real jobsched server for dashboard tests: the Runtime (SQLite, local backend, real processes)
and the workflow routes behind the real app, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobsched.server.app import create_app
from jobsched.server.auth import load_or_create_token
from tests.api.live import serve_in_thread

PY = sys.executable


@dataclass
class Live:
    url: str
    token: str
    runtime: Any
    home: Path
    runtime_workflows: Any = None  # the WorkflowController behind /v1/workflows

    @property
    def service(self) -> Any:
        return self.runtime.service

    def login_path(self) -> str:
        r = httpx.post(self.url + "/v1/dashboard/login", headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return str(r.json()["path"])

    def browser_client(self) -> httpx.Client:
        """An HTTP client logged in to the dashboard through a one-time code (cookies kept)."""
        c = httpx.Client(base_url=self.url, follow_redirects=False)
        assert c.get(self.login_path()).status_code == 200
        return c


def job(name: str, argv: list[str], memory: str = "64Mi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {**spec, "template": {"command": argv,
                                          "resources": {"requests": {"cpu": "100m", "memory": memory}}}}}


@pytest.fixture
def live(tmp_path) -> Iterator[Live]:
    from jobsched.server.runtime import Runtime
    from jobsched.server.workflow_routes import make_router

    home = tmp_path / "home"
    token = load_or_create_token(home)
    rt = Runtime(home)
    rt.start()
    workflows = make_router(rt)
    try:
        with serve_in_thread(create_app(rt.service, rt.metrics, token, [workflows])) as url:
            yield Live(url, token, rt, home, workflows.workflow_controller)
    finally:
        with contextlib.suppress(Exception):  # also stopped by the app's shutdown
            workflows.workflow_controller.stop()
        rt.stop()
