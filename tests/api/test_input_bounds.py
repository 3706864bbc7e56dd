"""Every input bound checked before it is stored (issue 13, items 3 and 9): out-of-range numbers,
over-long strings, NUL bytes, '=' in env names and relative paths are a 422 naming the field, never a
500, and nothing is stored; request bodies over the cap are a 413. The real app over a real service
and SQLite store in a temporary home (the controller is not started: nothing runs)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobsched.server.app import create_app
from jobsched.server.runtime import Runtime

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE: dict[str, Any] = {
    "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "j"},
    "spec": {"template": {"command": ["true"], "resources": {"requests": {"memory": "64Mi"}}}}}


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("home"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def client(rt: Runtime) -> TestClient:
    """Bodies up to 8 MiB, so that the string bounds themselves are what is tested."""
    return TestClient(create_app(rt.service, rt.metrics, TOKEN, max_body=8 << 20),
                      raise_server_exceptions=False)


def post(client: TestClient, path: str, body: Any, method: str = "POST") -> Any:
    """JSON as Python writes it (NaN and Infinity included, which Python's parser accepts)."""
    return client.request(method, path, content=json.dumps(body),
                          headers={**AUTH, "Content-Type": "application/json"})


def job(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` set at the dotted ``path`` (intermediate mappings created)."""
    m = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = m
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return m


TPL = "spec.template"
# (case, dotted path set, value, the field the 422 names)
CASES = [
    ("memory 1e30", f"{TPL}.resources.requests.memory", 1e30, f"{TPL}.resources.requests.memory"),
    ("memory '1e30'", f"{TPL}.resources.limits.memory", "1e30", f"{TPL}.resources.limits.memory"),
    ("memory 35 digits", f"{TPL}.resources.requests.memory", 10**35, f"{TPL}.resources.requests.memory"),
    ("memory 2Pi", f"{TPL}.resources.requests.memory", "2Pi", f"{TPL}.resources.requests.memory"),
    ("memory 1e999999999", f"{TPL}.resources.requests.memory", "1e999999999",
     f"{TPL}.resources.requests.memory"),
    ("cpu 1e30", f"{TPL}.resources.requests.cpu", "1e30", f"{TPL}.resources.requests.cpu"),
    ("cpu 2e6", f"{TPL}.resources.requests.cpu", 2_000_000, f"{TPL}.resources.requests.cpu"),
    ("gpus 2^40", f"{TPL}.resources.requests", {"memory": "1Gi", "nvidia.com/gpu": 2**40},
     f"{TPL}.resources.requests.nvidia.com/gpu"),
    ("priority 2^63", "spec.priority", 2**63, "spec.priority"),
    ("priority -2^63-1", "spec.priority", -(2**63) - 1, "spec.priority"),
    ("priority 10^9+1", "spec.priority", 10**9 + 1, "spec.priority"),
    ("replicas 2^63", "spec.replicas", 2**63, "spec.replicas"),
    ("maxRetries 2^64", "spec.maxRetries", 2**64, "spec.maxRetries"),
    ("generation 2^64", "metadata.generation", 2**64, "metadata.generation"),
    ("maxMemory 1e30", "spec.rightSizing.maxMemory", 1e30, "spec.rightSizing.maxMemory"),
    ("backoff 1e300 s", "spec.backoff.maxDuration", 1e300, "spec.backoff.maxDuration"),
    ("growth NaN", "spec.rightSizing.growth", float("nan"), "spec.rightSizing.growth"),
    ("label 1 MiB", "metadata.labels", {"a": "x" * (1 << 20)}, "metadata.labels.a"),
    ("annotations 512 KiB", "metadata.annotations", {"a": "x" * (512 << 10)}, "metadata.annotations"),
    ("arg 200 KiB", f"{TPL}.args", ["x" * (200 << 10)], f"{TPL}.args[0]"),
    ("command NUL", f"{TPL}.command", ["tr\0ue"], f"{TPL}.command[0]"),
    ("args total 1.5 MiB", f"{TPL}.args", ["x" * (100 << 10)] * 15, f"{TPL}.args"),
    ("env value 200 KiB", f"{TPL}.env", [{"name": "A", "value": "x" * (200 << 10)}], f"{TPL}.env[0].value"),
    ("env total 1.5 MiB", f"{TPL}.env", {f"V{i}": "x" * (100 << 10) for i in range(15)}, f"{TPL}.env"),
    ("env NUL value", f"{TPL}.env", [{"name": "A", "value": "x\0y"}], f"{TPL}.env[0].value"),
    ("env NUL name", f"{TPL}.env", [{"name": "A\0", "value": "x"}], f"{TPL}.env[0].name"),
    ("env '=' name", f"{TPL}.env", {"A=B": "x"}, f"{TPL}.env[0].name"),
    ("env empty name", f"{TPL}.env", [{"name": "", "value": "x"}], f"{TPL}.env[0].name"),
    ("workingDir relative", f"{TPL}.workingDir", "rel/dir", f"{TPL}.workingDir"),
    ("workingDir NUL", f"{TPL}.workingDir", "/tmp/\0", f"{TPL}.workingDir"),
    ("checkpointDir relative", "spec.checkpointDir", "ckpt", "spec.checkpointDir"),
    ("queue 2 KiB", "spec.queue", "q" * 2048, "spec.queue"),
    ("factoryKwargs NaN", "spec.rightSizing.factoryKwargs", {"lr": float("nan")},
     "spec.rightSizing.factoryKwargs.lr"),
    ("factoryKwargs 500 deep", "spec.rightSizing.factoryKwargs", {"x": json.loads("[" * 500 + "]" * 500)},
     "spec.rightSizing.factoryKwargs.x[0]"),
]


@pytest.mark.parametrize(("path", "value", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_out_of_range_input_is_422_naming_the_field(client: TestClient, rt: Runtime, path: str, value: Any,
                                                    field: str) -> None:
    r = post(client, "/v1/jobs", job(path, value))
    assert r.status_code == 422, r.text[:300]
    assert field in r.json()["detail"]
    assert rt.service.list() == []


def test_the_bounds_themselves_are_accepted(client: TestClient, rt: Runtime) -> None:
    m = job(f"{TPL}.resources.requests", {"memory": "1Pi", "cpu": 1_000_000})
    m["spec"].update(priority=-(10**9), checkpointDir="ckpt/../run1")
    m["spec"]["template"].update(workingDir="/srv/proj", args=["x" * (128 << 10)],
                                 env={"A": "y" * (128 << 10)})
    r = client.post("/v1/jobs", json=m, headers=AUTH)
    assert r.status_code == 201, r.text[:300]
    # A relative checkpointDir is resolved under workingDir, never the server's working directory.
    assert r.json()["manifest"]["spec"]["checkpointDir"] == "/srv/proj/run1"
    client.post("/v1/jobs/default/j/cancel", headers=AUTH)


@pytest.mark.parametrize("ckpt", ["../elsewhere", "a/../../b"])
def test_a_relative_checkpoint_dir_may_not_leave_the_working_dir(client: TestClient, ckpt: str) -> None:
    m = job("spec.checkpointDir", ckpt)
    m["spec"]["template"]["workingDir"] = "/srv/proj"
    r = client.post("/v1/jobs", json=m, headers=AUTH)
    assert r.status_code == 422 and "spec.checkpointDir" in r.json()["detail"]


def test_queue_quota_and_default_memory_bounds(client: TestClient) -> None:
    queue = {"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {}}
    for spec, field in (({"quota": {"memory": 1e30}}, "spec.quota.memory"),
                        ({"quota": {"cpu": 2e9}}, "spec.quota.cpu"),
                        ({"defaultMemory": "2Pi"}, "spec.defaultMemory"),
                        ({"weight": float("inf")}, "spec.weight")):
        r = post(client, "/v1/queues", {**queue, "spec": spec}, "PUT")
        assert r.status_code == 422 and field in r.json()["detail"], r.text
    assert "q" not in {q["name"] for q in client.get("/v1/queues", headers=AUTH).json()}


def test_logs_offset_beyond_2_63_is_422(client: TestClient, rt: Runtime, tmp_path: Path) -> None:
    assert client.post("/v1/jobs", json=job("metadata.name", "logs"), headers=AUTH).status_code == 201
    r = client.get("/v1/jobs/default/logs/logs", params={"replica": 0, "offset": 2**63}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"].startswith("offset:")
    r = client.get("/v1/jobs/default/logs/logs", params={"replica": 2**64}, headers=AUTH)
    assert r.status_code == 422 and "replica" in r.json()["detail"]
    r = client.get("/v1/jobs/default/logs/logs", params={"replica": 0, "offset": 2**63 - 1}, headers=AUTH)
    assert r.status_code == 200
    client.post("/v1/jobs/default/logs/cancel", headers=AUTH)


def _big_manifest(size: int) -> dict[str, Any]:
    """Valid but for its size: the bulk is in rightSizing.factoryKwargs (free-form)."""
    m = job("metadata.name", "big")
    m["spec"]["rightSizing"] = {"factory": "m:f", "factoryKwargs": {"blob": "x" * size}}
    return m


def test_a_body_over_the_cap_is_413_and_nothing_is_stored(rt: Runtime) -> None:
    client = TestClient(create_app(rt.service, rt.metrics, TOKEN))  # the default cap: 1 MiB
    before = len(rt.service.list())
    r = client.post("/v1/jobs", json=_big_manifest(2 << 20), headers=AUTH)
    assert r.status_code == 413
    assert r.json()["detail"].startswith("body: request body larger than 1048576 bytes")
    # Streamed (chunked, no Content-Length): counted as it is read.
    chunks = (b'{"blob": "' + b"x" * (256 << 10) for _ in range(8))
    r = client.post("/v1/jobs", content=chunks, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 1048576 bytes" in r.json()["detail"]
    assert len(rt.service.list()) == before
    assert client.post("/v1/jobs", json=_big_manifest(900 << 10), headers=AUTH).status_code == 201
    client.post("/v1/jobs/default/big/cancel", headers=AUTH)


def test_the_body_cap_is_configurable(rt: Runtime) -> None:
    small = TestClient(create_app(rt.service, rt.metrics, TOKEN, max_body=2048))
    r = small.put("/v1/queues", json={"metadata": {"name": "x" * 10}, "spec": {"weight": 1}, "pad": "x" * 4096},
                  headers=AUTH)
    assert r.status_code == 413 and "larger than 2048 bytes" in r.json()["detail"]
    r = small.post("/v1/jobs", content=b"{}", headers={**AUTH, "Content-Length": "-1"})
    assert r.status_code == 400
    with pytest.raises(ValueError, match="max_body"):
        create_app(rt.service, rt.metrics, TOKEN, max_body=0)


def test_logs_offsets_at_the_bound_on_a_real_log(tmp_path: Path) -> None:
    """A job that ran and wrote a log: a byte offset at 2^63 - 1 reads nothing (200), 2^63 is a 422."""
    import time

    runtime = Runtime(tmp_path / "home")
    runtime.start()
    try:
        c = TestClient(create_app(runtime.service, runtime.metrics, TOKEN), raise_server_exceptions=False)
        assert post(c, "/v1/jobs", job(f"{TPL}.command", ["echo", "hi"])).status_code == 201
        deadline = time.monotonic() + 60
        while not runtime.service.get("default", "j").phase.is_terminal():
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        logs = "/v1/jobs/default/j/logs"
        assert c.get(logs, params={"replica": 0}, headers=AUTH).text == "hi\n"
        r = c.get(logs, params={"replica": 0, "offset": 2**63 - 1}, headers=AUTH)
        assert (r.status_code, r.text, r.headers["X-Next-Offset"]) == (200, "", str(2**63 - 1))
        assert c.get(logs, params={"replica": 0, "offset": 2**63}, headers=AUTH).status_code == 422
        r = c.get(logs, params={"offset": 2**70}, headers=AUTH)  # a cursor: only rank 0's 40 bits count
        assert r.status_code == 200
    finally:
        runtime.stop()
