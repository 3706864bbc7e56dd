"""A real, small Ray cluster for the Ray backend's tests.

The cluster is owned by a helper process (like a `ray start --head` machine), so the test process
is only a driver: disconnecting it, as a stopped scheduler does, leaves detached actors running.
It has 4 CPUs, a 100 MB object store and no dashboard, and is shut down at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("ray", reason="the Ray backend tests need ray: pip install 'jobsched[ray]'")

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_CPUS = 4
T = TypeVar("T")

_HELPER = """
import sys, ray
ray.init(address="local", num_cpus={cpus}, include_dashboard=False, object_store_memory=100 * 2**20,
         namespace="jobsched", log_to_driver=False, logging_level="ERROR")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test session closes our stdin
ray.shutdown()
"""


def wait_for(check: Callable[[], T | None], timeout: float = 60.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", _HELPER.format(cpus=CLUSTER_CPUS)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    address = proc.stdout.readline().strip()
    if not address:
        proc.kill()
        pytest.fail("the helper process did not start a Ray cluster")
    try:
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def make_backend(ray_address: str, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """RayBackend instances connected to the session cluster; each is closed (disconnected)."""
    from jobsched.backends.ray.backend import RayBackend

    made: list[RayBackend] = []

    def make(home: Path | None = None, **options: Any) -> RayBackend:
        b = RayBackend(home=home or tmp_path / "home", address=ray_address, **options)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
