"""A real Kubernetes control plane for tests: etcd + kube-apiserver + KWOK.

The binaries are built from pinned Go modules by ``tools/k8s-testenv/testenv.sh``
(see docs/k8s-testenv.md). KWOK plays the kubelet for fake nodes: a pod bound to
a KWOK node becomes Running, and the ``jobsched.io/kwok-outcome`` annotation
decides how it ends (Succeeded, Failed, OOMKilled).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]
TESTENV = ROOT / "tools" / "k8s-testenv" / "testenv.sh"
BIN = ROOT / ".cache" / "k8s-testenv" / "bin"
TOOLS = ("etcd", "kube-apiserver", "kube-scheduler", "kwok")
GO_HINT = (
    "the Kubernetes test control plane is not built and Go is missing: install Go >= 1.22 "
    "(https://go.dev/dl/) and run tools/k8s-testenv/testenv.sh build"
)

OUTCOME_ANNOTATION = "jobsched.io/kwok-outcome"  # Succeeded | Failed | OOMKilled
OUTCOME_AFTER_ANNOTATION = "jobsched.io/kwok-outcome-after"  # Go duration, e.g. "30s"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"  # value "fake": KWOK manages the node

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns a truthy value; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class K8sCluster:
    """Handle on a running test control plane (state, logs and certificates in ``dir``)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.kubeconfig = directory / "kubeconfig"
        self._node_ids = itertools.count()

    def _testenv(self, *args: str) -> None:
        subprocess.run([str(TESTENV), *args], check=True)

    def start(self, component: str | None = None) -> None:
        """Start the parts of the control plane that are not running (idempotent), or
        one component: ``etcd``, ``kube-apiserver``, ``kwok`` or ``kube-scheduler``
        (the default scheduler runs only when started by name)."""
        self._testenv("start", str(self.dir), *([component] if component else []))

    def stop(self, component: str | None = None) -> None:
        """Stop everything, or one component (SIGTERM, then SIGKILL after 10 s)."""
        self._testenv("stop", str(self.dir), *([component] if component else []))

    def stop_apiserver(self) -> None:
        self.stop("kube-apiserver")

    def start_apiserver(self) -> None:
        self.start()

    def api_client(self) -> ApiClient:
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return api

    def add_nodes(
        self,
        n: int,
        cpu: str | int = "8",
        memory: str = "32Gi",
        gpus: int = 0,
        labels: Mapping[str, str] | None = None,
        pods: int = 110,
        prefix: str = "kwok-node",
        timeout: float = 60.0,
    ) -> list[str]:
        """Create ``n`` KWOK nodes with the given capacity and labels; wait until Ready.

        ``gpus`` become ``nvidia.com/gpu`` capacity. Returns the node names.
        """
        from kubernetes import client
        from kubernetes.utils import parse_quantity

        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if not isinstance(gpus, int) or gpus < 0:
            raise ValueError(f"gpus: expected a non-negative integer, got {gpus!r}")
        for field, value in (("cpu", cpu), ("memory", memory)):
            try:
                ok = parse_quantity(value) > 0  # type: ignore[no-untyped-call]
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{field}: expected a positive Kubernetes quantity, got {value!r}")
        capacity = {"cpu": str(cpu), "memory": memory, "pods": str(pods)}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        names = [f"{prefix}-{next(self._node_ids)}" for _ in range(n)]
        api = client.CoreV1Api(self.api_client())

        def create(name: str) -> None:
            node_labels = {"type": "kwok", "kubernetes.io/hostname": name, **(labels or {})}
            api.create_node(
                client.V1Node(
                    metadata=client.V1ObjectMeta(
                        name=name, labels=node_labels, annotations={KWOK_NODE_ANNOTATION: "fake"}
                    ),
                    status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
                )
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, names))

        def all_ready() -> bool:
            nodes: list[Any] = api.list_node(label_selector="type=kwok").items
            ready = {
                node.metadata.name
                for node in nodes
                if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            }
            return ready.issuperset(names)

        wait_for(all_ready, timeout, f"{n} KWOK nodes to become Ready")
        return names


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """:func:`wait_for`, for test modules (which cannot import this conftest)."""
    return wait_for


def _ensure_built() -> None:
    if shutil.which("go") is None:
        if all((BIN / tool).is_file() for tool in TOOLS):
            return  # prebuilt binaries (e.g. a CI cache) are enough
        pytest.skip(GO_HINT)
    # Idempotent: returns at once when the binaries match the pinned sources.
    subprocess.run([str(TESTENV), "build"], check=True)


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sCluster]:
    """etcd + kube-apiserver + KWOK on loopback ports for the whole test session."""
    _ensure_built()
    cluster = K8sCluster(tmp_path_factory.mktemp("k8s-testenv"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
