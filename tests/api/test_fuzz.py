"""Property-based fuzzing (hypothesis) of everything a user hands the server: manifests with random
structures and values (huge integers, NaN and infinities, NUL bytes, nested junk) and raw HTTP bodies,
sent to the real app over a real service and SQLite store in a temporary home. Any 5xx, or any
exception escaping the app (a traceback), fails the test; so does a stored job that cannot be listed
back. The local loaders (safe YAML, SDK validation) get the same treatment. Budget: a few hundred
examples, well under 30 s (JOBSCHED_FUZZ_EXAMPLES for more)."""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobsched.sdk.errors import InvalidSpec
from jobsched.sdk.manifest import validate
from jobsched.server.app import create_app
from jobsched.server.runtime import Runtime
from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError
from jobsched.spec.job import TrainingJob

TOKEN = "fuzz"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
# CI: 150 examples each, the same every run. JOBSCHED_FUZZ_EXAMPLES=5000 for a longer, random hunt.
_EXAMPLES = os.environ.get("JOBSCHED_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_EXAMPLES or 150), deadline=None, derandomize=_EXAMPLES is None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

EDGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**35, -1, 0]
EDGE_STRINGS = ["1e30", "1e999999999", "-1", "NaN", "Infinity", "1Gi", "500m", "0x10", "1e-30", "",
                " ", "9" * 40, "a\0b", "=", "A=B", "../..", "rel/dir", "/abs", "\udcff"[:0] + "é" * 3]
scalars = (st.none() | st.booleans() | st.integers() | st.sampled_from(EDGE_INTS)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(EDGE_STRINGS))
deep = st.integers(30, 900).map(lambda n: json.loads("[" * n + "]" * n))  # nested junk
values = st.recursive(scalars | deep, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | st.sampled_from(["name", "value", "memory"]),
                                        inner, max_size=4), max_leaves=12)

TRAINING_JOB: dict[str, Any] = {
    "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "fz"},
    "spec": {"template": {"command": ["true"], "resources": {"requests": {"memory": "64Mi"}}}}}
PYTORCH_JOB: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "fz"},
    "spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "x", "command": ["true"],
         "resources": {"limits": {"memory": "1Gi"}}}]}}}}}}
PATHS = [
    "metadata.name", "metadata.namespace", "metadata.labels", "metadata.annotations", "metadata.generation",
    "spec.queue", "spec.priority", "spec.replicas", "spec.maxRetries", "spec.memoryPolicy",
    "spec.checkpointDir", "spec.placement", "spec.gpuModels", "spec.gpuSharing", "spec.backoff",
    "spec.backoff.duration", "spec.backoff.factor", "spec.rightSizing", "spec.rightSizing.factoryKwargs",
    "spec.rightSizing.maxMemory", "spec.rightSizing.margin", "spec.template.command", "spec.template.args",
    "spec.template.env", "spec.template.workingDir", "spec.template.image", "spec.template.nodeSelector",
    "spec.template.resources", "spec.template.resources.requests", "spec.template.resources.requests.memory",
    "spec.template.resources.requests.cpu", "spec.template.resources.limits.memory", "spec",
    "spec.pytorchReplicaSpecs.Worker.replicas", "spec.pytorchReplicaSpecs.Master", "status", "kind",
    "spec.rightSizing.factoryKwargs.a", "spec.rightSizing.factoryKwargs.b",  # free-form: stored as is
]


@st.composite
def manifests(draw: st.DrawFn) -> Any:
    """A valid manifest with a few fields replaced by junk, or junk altogether."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    m = copy.deepcopy(draw(st.sampled_from([TRAINING_JOB, TRAINING_JOB, PYTORCH_JOB])))
    for _ in range(draw(st.integers(1, 3))):
        *parents, leaf = draw(st.sampled_from(PATHS)).split(".")
        node = m
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = draw(values)
    if isinstance(m.get("metadata"), dict) and draw(st.integers(0, 9)):
        m["metadata"]["name"] = f"fz{next(_FRESH)}"  # mostly fresh names: stored, then read back
    return m


_FRESH = itertools.count()


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    rt = Runtime(tmp_path_factory.mktemp("home"))  # the controller is not started: nothing runs
    try:
        yield TestClient(create_app(rt.service, rt.metrics, TOKEN), raise_server_exceptions=True)
    finally:
        rt.stop()


def check(resp: Any) -> None:
    assert resp.status_code < 500, resp.text[:500]
    if resp.status_code >= 400:
        assert isinstance(resp.json().get("detail"), str | list), resp.text[:500]


def _with(path: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(TRAINING_JOB)
    m["metadata"]["name"] = f"ex{next(_FRESH)}"
    *parents, leaf = path.split(".")
    node = m
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return m


# The probes of issue 13, always tried first.
KNOWN = [_with("spec.template.resources.requests.memory", 1e30), _with("spec.priority", 2**63),
         _with("spec.template.env", [{"name": "A", "value": "a\0b"}]),
         _with("spec.rightSizing.factoryKwargs", {"x": json.loads("[" * 400 + "]" * 400)}),
         _with("spec.rightSizing.factoryKwargs", {"x": float("nan")})]


@FUZZ
@given(m=manifests())
@example(m=KNOWN[0]).via("issue 13")
@example(m=KNOWN[1]).via("issue 13")
@example(m=KNOWN[2]).via("issue 13")
@example(m=KNOWN[3]).via("issue 13")
@example(m=KNOWN[4]).via("issue 13")
def test_fuzzed_manifests_never_get_a_5xx(fuzz_client: TestClient, m: Any) -> None:
    body = json.dumps(m)  # NaN and Infinity as Python writes them (its parser accepts them)
    r = fuzz_client.post("/v1/jobs", content=body, headers=AUTH)
    check(r)
    if r.status_code == 201:  # what was stored can be read back and listed
        name, ns = r.json()["name"], r.json()["namespace"]
        check(fuzz_client.get(f"/v1/jobs/{ns}/{name}", headers=AUTH))
        check(fuzz_client.get("/v1/jobs", headers=AUTH))
    check(fuzz_client.put("/v1/queues", content=body.replace("TrainingJob", "Queue"), headers=AUTH))


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       path=st.sampled_from(["/v1/jobs", "/v1/queues"]))
def test_fuzzed_bodies_never_get_a_5xx(fuzz_client: TestClient, body: bytes, path: str) -> None:
    check(fuzz_client.request("PUT" if path == "/v1/queues" else "POST", path, content=body, headers=AUTH))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["replica", "attempt", "offset"]),
                              st.integers().map(str) | st.sampled_from(EDGE_STRINGS), max_size=3))
def test_fuzzed_log_queries_never_get_a_5xx(fuzz_client: TestClient, params: dict[str, str]) -> None:
    fuzz_client.post("/v1/jobs", json={**TRAINING_JOB, "metadata": {"name": "logs"}}, headers=AUTH)
    check(fuzz_client.get("/v1/jobs/default/logs/logs", params=params, headers=AUTH))


@FUZZ
@given(m=manifests())
def test_local_validation_raises_only_invalid_spec(m: Any) -> None:
    if not isinstance(m, dict):
        return
    try:
        validate(TrainingJob, m)
    except InvalidSpec:
        pass


@FUZZ
@given(data=st.binary(max_size=200) | st.text(max_size=200)
       | values.map(lambda v: json.dumps(v).replace("{", "{&a ", 1)))
def test_yaml_loader_raises_only_spec_error(data: bytes | str) -> None:
    try:
        yamlsafe.loads_all(data, "f.yaml")
    except SpecError as e:
        assert str(e).startswith("f.yaml")
