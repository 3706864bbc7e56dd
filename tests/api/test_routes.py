"""The HTTP layer: bearer auth on every path, error mapping to status codes with the field path,
the OpenAPI spec, logs headers and Prometheus metrics. The service behind it is a test double."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from jobsched.server.app import create_app
from jobsched.server.metrics import Metrics
from tests.api.service_double import InMemoryServiceDouble

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def job(name: str = "train", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"template": {"command": ["python", "-c", "pass"],
                                  "resources": {"requests": {"memory": "1Gi"}}}, **spec}}


@pytest.fixture
def svc() -> InMemoryServiceDouble:
    return InMemoryServiceDouble()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def client(svc: InMemoryServiceDouble, metrics: Metrics) -> TestClient:
    extra = APIRouter()

    @extra.get("/v1/workflows")
    def workflows() -> list[str]:
        return ["wf"]

    return TestClient(create_app(svc, metrics, TOKEN, [extra]))


PATHS = [("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"),
         ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/default/x"),
         ("POST", "/v1/jobs/default/x/cancel"), ("GET", "/v1/jobs/default/x/events"),
         ("GET", "/v1/jobs/default/x/logs"), ("GET", "/v1/queues"), ("PUT", "/v1/queues"),
         ("GET", "/v1/nodes"), ("GET", "/v1/info"), ("GET", "/v1/workflows"), ("GET", "/nope"),
         ("POST", "/v1/tokens"), ("GET", "/v1/tokens"), ("DELETE", "/v1/tokens/x"), ("GET", "/v1/audit")]


@pytest.mark.parametrize(("method", "path"), PATHS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_every_path_needs_the_token(client: TestClient, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = client.request(method, path, headers=headers, json=job())
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["detail"] in ("missing bearer token", "invalid bearer token")


def test_rejected_submit_stores_nothing(client: TestClient, svc: InMemoryServiceDouble) -> None:
    assert client.post("/v1/jobs", json=job()).status_code == 401
    assert svc.jobs == {}


def test_submit_get_list_cancel(client: TestClient, svc: InMemoryServiceDouble) -> None:
    r = client.post("/v1/jobs", json=job(), headers=AUTH)
    assert r.status_code == 201
    assert r.json()["name"] == "train" and r.json()["phase"] == "Pending"
    assert client.get("/v1/jobs/default/train", headers=AUTH).json()["queue"] == "default"
    r = client.get("/v1/jobs", params={"namespace": "default", "queue": "default"}, headers=AUTH)
    assert [j["name"] for j in r.json()["items"]] == ["train"]
    assert svc.calls[-1] == ("list", ("default", None, "default", 500, None))
    r = client.get("/v1/jobs", params={"limit": 1, "continue": "0"}, headers=AUTH)
    assert r.json()["continue"] is None and r.json()["remaining"] == 0
    assert svc.calls[-1] == ("list", (None, None, None, 1, "0"))
    assert client.post("/v1/jobs/default/train/cancel", headers=AUTH).json()["phase"] == "Cancelled"
    events = client.get("/v1/jobs/default/train/events", headers=AUTH).json()
    assert events[0]["reason"] == "Submitted"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 100001}, {"limit": "x"}])
def test_list_limit_out_of_range_is_422_naming_it(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/v1/jobs", params=params, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"].startswith("limit:")


@pytest.mark.parametrize(("manifest", "field"), [
    (job(replicas=0), "spec.replicas"),
    (job(replicaz=2), "spec.replicaz: unknown field"),
    ({**job(), "metadata": {"name": "Bad_Name"}}, "metadata.name"),
    (job(queue="nosuch"), "spec.queue"),
])
def test_bad_manifest_is_422_naming_the_field(client: TestClient, svc: InMemoryServiceDouble,
                                              manifest: dict[str, Any], field: str) -> None:
    r = client.post("/v1/jobs", json=manifest, headers=AUTH)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str) and field in r.json()["detail"]
    assert svc.jobs == {}


def test_bad_quantity_is_422(client: TestClient) -> None:
    m = job()
    m["spec"]["template"]["resources"]["requests"]["memory"] = "lots"
    r = client.post("/v1/jobs", json=m, headers=AUTH)
    assert r.status_code == 422
    assert "spec.template.resources.requests.memory" in r.json()["detail"]


def test_body_must_be_an_object(client: TestClient) -> None:
    r = client.post("/v1/jobs", json=[1, 2], headers=AUTH)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


def test_malformed_or_missing_body(client: TestClient) -> None:
    r = client.post("/v1/jobs", content=b'{"a": ', headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body: invalid JSON at character 6")
    r = client.post("/v1/jobs", headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"] == "body: a JSON manifest is required"


def test_bad_query_parameter_names_it(client: TestClient) -> None:
    client.post("/v1/jobs", json=job(), headers=AUTH)
    r = client.get("/v1/jobs/default/train/logs", params={"offset": -1}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"].startswith("offset:")


def test_not_found_and_conflict(client: TestClient) -> None:
    r = client.get("/v1/jobs/default/ghost", headers=AUTH)
    assert r.status_code == 404 and "default/ghost" in r.json()["detail"]
    assert client.post("/v1/jobs", json=job(), headers=AUTH).status_code == 201
    r = client.post("/v1/jobs", json=job(), headers=AUTH)
    assert r.status_code == 409 and r.json()["detail"].startswith("metadata.name")


def test_logs_text_and_offset_headers(client: TestClient, svc: InMemoryServiceDouble) -> None:
    client.post("/v1/jobs", json=job(), headers=AUTH)
    r = client.get("/v1/jobs/default/train/logs", params={"replica": 1, "offset": 7}, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text == "step 2\n"
    assert r.headers["X-Next-Offset"] == "14" and r.headers["X-Job-Terminal"] == "true"
    assert svc.calls[-1] == ("logs", (1, None, 7))


def test_queues_nodes_info(client: TestClient) -> None:
    q = {"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": "team-a"},
         "spec": {"quota": {"memory": "8Gi"}, "weight": 2}}
    r = client.put("/v1/queues", json=q, headers=AUTH)
    assert r.status_code == 200 and r.json()["weight"] == 2
    assert [x["name"] for x in client.get("/v1/queues", headers=AUTH).json()] == ["default", "team-a"]
    bad = client.put("/v1/queues", json={**q, "spec": {"quota": {"disk": "1"}}}, headers=AUTH)
    assert bad.status_code == 422 and "spec.quota" in bad.json()["detail"]
    assert client.get("/v1/nodes", headers=AUTH).json()[0]["name"] == "local"
    assert client.get("/v1/info", headers=AUTH).json()["backend"] == "double"
    assert client.get("/healthz", headers=AUTH).json() == {"ok": True}


def test_healthz_is_open_and_says_nothing_else(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.get("/healthz", headers=headers)
        assert r.status_code == 200 and r.json() == {"ok": True}
    assert client.post("/healthz").status_code == 401  # only the GET is open


def test_openapi_documents_routes_and_bearer(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers=AUTH).json()
    for path in ("/v1/jobs", "/v1/jobs/{namespace}/{name}", "/v1/jobs/{namespace}/{name}/logs",
                 "/v1/queues", "/v1/nodes", "/v1/info", "/v1/workflows"):
        assert path in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs", headers=AUTH).status_code == 200


def test_metrics_served_from_the_registry(client: TestClient, metrics: Metrics) -> None:
    metrics.jobs.labels(phase="Running", queue="default").set(3)
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert 'jobsched_jobs{phase="Running",queue="default"} 3.0' in r.text


def test_empty_token_refused(svc: InMemoryServiceDouble, metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(svc, metrics, "")
