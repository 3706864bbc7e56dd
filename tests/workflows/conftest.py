"""Workflows run end to end: the real Runtime (local backend, real subprocesses, SQLite) with a
WorkflowController on top, driven by its own thread like the server does."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobsched.server.runtime import Runtime
from jobsched.workflows.controller import WorkflowController
from jobsched.workflows.state import WorkflowState

PY = sys.executable


class Harness:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.runtime = Runtime(home)
        self.runtime.start()
        self.ctl = WorkflowController.for_runtime(self.runtime, interval=0.05)
        self.ctl.start()

    def run(self, manifest: str | dict[str, Any], params: dict[str, str] | None = None,
            timeout: float = 60.0) -> WorkflowState:
        doc = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
        st = self.ctl.submit(doc, params)
        return self.ctl.wait(st.namespace, st.name, timeout)

    def stop(self) -> None:
        self.ctl.stop()
        self.runtime.stop()


@pytest.fixture
def wfh(tmp_path) -> Iterator[Harness]:
    h = Harness(tmp_path / "home")
    yield h
    h.stop()


@pytest.fixture
def make_harness(tmp_path) -> Iterator[Callable[[], Harness]]:
    made: list[Harness] = []

    def make() -> Harness:
        h = Harness(tmp_path / "home")
        made.append(h)
        return h

    yield make
    for h in made:
        with contextlib.suppress(Exception):
            h.stop()


def by_display(st: WorkflowState) -> dict[str, Any]:
    """Nodes by display name (the last one wins for duplicates)."""
    return {n.display_name: n for n in st.nodes.values()}
