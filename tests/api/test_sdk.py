"""The SDK against a real server (Runtime + app over HTTP in a thread): typed results, the error
hierarchy, local YAML validation with file and line, wait with progress, logs (plain and follow)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobsched import Client
from jobsched.sdk import (
    ConflictError,
    InvalidSpec,
    JobschedError,
    NotFoundError,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)
from jobsched.spec.api import JobStatus
from jobsched.spec.job import TrainingJob
from tests.api.live import free_port, live_runtime


def manifest(name: str, code: str = "print('hello')", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"template": {"command": [sys.executable, "-c", code],
                                  "resources": {"requests": {"memory": "256Mi"}}}, **spec}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any]]:
    with live_runtime(tmp_path_factory.mktemp("home")) as srv:
        yield srv


@pytest.fixture
def client(server: tuple[str, str, Any]) -> Iterator[Client]:
    url, token, _ = server
    with Client(url=url, token=token) as c:
        yield c


def test_submit_wait_logs_typed(client: Client) -> None:
    code = "import sys\nfor i in range(3): print('line', i, flush=True)\nprint('oops', file=sys.stderr)"
    st = client.submit(manifest("hello", code))
    assert isinstance(st, JobStatus) and st.name == "hello" and st.phase.value == "Pending"
    seen: list[JobStatus] = []
    final = client.wait("hello", timeout=60, poll=0.1, on_update=seen.append)
    assert final.phase.value == "Succeeded" and seen[-1].phase.value == "Succeeded"
    keys = [(s.phase, len(s.attempts), s.reason, s.attempts[-1].reason if s.attempts else None)
            for s in seen]
    assert all(a != b for a, b in zip(keys, keys[1:], strict=False))  # called on changes only
    a = final.attempts[-1]
    assert a.exit_code == 0 and a.reason == "Completed" and a.resources.requests["memory"] == 256 << 20
    text = client.logs("hello")
    assert isinstance(text, str) and "line 2" in text
    chunks = list(client.logs("hello", follow=True, poll=0.05))
    assert "".join(chunks) == text
    assert [e.reason for e in client.events("hello")][0] == "Submitted"
    assert "hello" in [j.name for j in client.list(phase="Succeeded")]


def test_follow_streams_until_the_job_ends(client: Client) -> None:
    code = "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    client.submit(manifest("ticker", code))
    out = "".join(client.logs("ticker", follow=True, poll=0.1))
    assert [line for line in out.splitlines() if line.startswith("tick")] == [f"tick {i}" for i in range(4)]
    assert client.get("ticker").phase.value == "Succeeded"


def test_submit_model_and_cancel(client: Client) -> None:
    job = TrainingJob.model_validate(manifest("sleeper", "import time; time.sleep(60)"))
    assert client.submit(job).name == "sleeper"
    with pytest.raises(WaitTimeout, match="sleeper"):
        client.wait("sleeper", timeout=0.3, poll=0.1)
    client.cancel("sleeper")
    assert client.wait("sleeper", timeout=60, poll=0.1).phase.value == "Cancelled"


def test_error_hierarchy(client: Client, server: tuple[str, str, Any]) -> None:
    with pytest.raises(NotFoundError, match="default/ghost"):
        client.get("ghost")
    client.submit(manifest("dup", "pass"))
    with pytest.raises(ConflictError, match="metadata.name"):
        client.submit(manifest("dup", "pass"))
    with pytest.raises(InvalidSpec, match="spec.queue"):  # only the server knows the queues
        client.submit(manifest("q", "pass", queue="nosuch"))
    with pytest.raises(InvalidSpec, match="spec.replicas"):  # caught locally
        client.submit(manifest("r", "pass", replicas=0))
    with pytest.raises(InvalidSpec, match="spec.weight"):
        client.apply_queue({"metadata": {"name": "team"}, "spec": {"weight": 0}})
    with pytest.raises(Unauthorized, match="invalid bearer token"), Client(url=server[0], token="x") as c:
        c.list()
    with pytest.raises(ServerUnreachable), Client(url=f"http://127.0.0.1:{free_port()}", token="x") as c:
        c.info()
    assert issubclass(InvalidSpec, JobschedError) and issubclass(ServerUnreachable, JobschedError)
    assert "q" not in [j.name for j in client.list()]


def test_yaml_errors_name_file_and_line(client: Client, tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text("metadata:\n  name: x\nspec:\n  template:\n    command: [a\n")
    with pytest.raises(InvalidSpec, match=r"job\.yaml:\d+:\d+: malformed YAML"):
        client.submit(p)
    p.write_text("metadata:\n  name: x\nspec:\n  template:\n    command: [a]\n    comand: [b]\n")
    with pytest.raises(InvalidSpec, match=r"job\.yaml:6: spec\.template\.comand: unknown field"):
        client.submit(str(p))
    with pytest.raises(InvalidSpec, match="cannot read"):
        client.submit(tmp_path / "missing.yaml")


def test_queues_nodes_info(client: Client, tmp_path: Path) -> None:
    p = tmp_path / "q.yaml"
    p.write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\nmetadata: {name: team-a}\n"
                 "spec: {quota: {memory: 8Gi}, weight: 2}\n")
    assert client.apply_queue(p).weight == 2
    assert {"default", "team-a"} <= {q.name for q in client.queues()}
    assert client.nodes()[0].allocatable
    assert client.info().backend == "local"


def test_namespaces(client: Client) -> None:
    m = manifest("same", "print('in team')")
    m["metadata"]["namespace"] = "team"
    client.submit(m)
    client.submit(manifest("same", "print('in default')"))
    assert client.wait("same", timeout=60, poll=0.1, namespace="team").phase.value == "Succeeded"
    assert client.logs("same", namespace="team") == "in team\n"
    assert client.get("same", "team").namespace == "team"
    assert [j.namespace for j in client.list(namespace="team")] == ["team"]
    with pytest.raises(NotFoundError):
        client.get("same", "other")


def test_bad_port_env_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSCHED_URL", raising=False)
    monkeypatch.setenv("JOBSCHED_PORT", "eighty")
    with pytest.raises(InvalidSpec, match="JOBSCHED_PORT"):
        Client()


def test_other_kinds_are_left_to_the_server(client: Client) -> None:
    ptj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "ptj"},
           "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [
               {"name": "pytorch", "command": [sys.executable, "-c", "print('converted')"],
                "resources": {"requests": {"memory": "64Mi"}}}]}}}}}}
    assert client.submit(ptj).name == "ptj"  # converted by the server, not refused locally
    assert client.wait("ptj", timeout=60, poll=0.1).phase.value == "Succeeded"
    with pytest.raises(InvalidSpec, match="kind"):
        client.submit({"kind": "Workflow", "metadata": {"name": "wf"}})
