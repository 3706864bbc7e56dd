"""Listing in pages (limit + continue, as kubectl), summaries without manifests, and the manifest
size cap: a real Runtime behind the real app over HTTP, through the SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobsched import Client
from jobsched.sdk import InvalidSpec
from tests.api.live import live_runtime


def job(name: str, namespace: str = "default", **extra: Any) -> dict[str, Any]:
    # No node has this label: the job fails Unschedulable at once, without starting a process.
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace, **extra},
            "spec": {"template": {"command": [sys.executable, "-c", "pass"], "nodeSelector": {"nowhere": "x"},
                                  "resources": {"requests": {"memory": "64Mi"}}}}}


@pytest.fixture
def server(tmp_path: Any) -> Iterator[tuple[str, str, Any]]:
    with live_runtime(tmp_path / "home") as srv:
        yield srv


@pytest.fixture
def client(server: tuple[str, str, Any]) -> Iterator[Client]:
    with Client(url=server[0], token=server[1]) as c:
        yield c


def test_pages_cover_every_job_once_in_order(client: Client) -> None:
    names = [f"j{i:02d}" for i in range(7)]
    for n in names:
        client.submit(job(n))
    first = client.list_page(limit=3)
    assert [j.name for j in first.items] == names[:3] and first.remaining == 4 and first.continue_
    client.submit(job("late"))  # submitted while paging: on a later page, not lost, not repeated
    second = client.list_page(limit=3, continue_=first.continue_)
    third = client.list_page(limit=3, continue_=second.continue_)
    assert [j.name for j in second.items + third.items] == names[3:] + ["late"]
    assert third.continue_ is None and third.remaining == 0
    assert [j.name for j in client.list()] == names + ["late"]
    assert [j.name for j in client.iter_jobs(page_size=2)] == names + ["late"]


def test_filters_apply_across_pages(client: Client) -> None:
    for i in range(5):
        client.submit(job(f"a{i}", namespace="team-a"))
        client.submit(job(f"b{i}", namespace="team-b"))
    page = client.list_page(namespace="team-b", limit=2)
    assert [j.name for j in page.items] == ["b0", "b1"] and page.remaining == 3
    rest = client.list_page(namespace="team-b", limit=10, continue_=page.continue_)
    assert [j.name for j in rest.items] == ["b2", "b3", "b4"]
    with pytest.raises(InvalidSpec, match="^continue: .*other filters"):
        client.list_page(namespace="team-a", continue_=page.continue_)


def test_list_is_summaries_without_manifests(server: tuple[str, str, Any], client: Client) -> None:
    client.submit(job("sum", labels={"big": "x" * 1000}))
    url, token, _ = server
    body = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()
    item = body["items"][0]
    assert item["name"] == "sum" and "manifest" not in item and "events" not in item
    assert "x" * 1000 not in str(body) and body["continue"] is None
    assert isinstance(item["attempts"], int)


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"limit": 5000}, "limit"),
                                               ({"continue": "garbage!"}, "continue"),
                                               ({"phase": "Nope"}, "phase")])
def test_bad_list_parameters_are_422_naming_them(server: tuple[str, str, Any], params: dict[str, Any],
                                                 field: str) -> None:
    url, token, _ = server
    r = httpx.get(f"{url}/v1/jobs", params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and r.json()["detail"].startswith(f"{field}:"), r.text


def test_a_manifest_over_the_cap_is_refused_and_not_stored(server: tuple[str, str, Any], client: Client) -> None:
    url, token, rt = server
    rt.service.max_manifest_bytes = 256 * 1024  # a server started with JOBSCHED_MAX_MANIFEST_BYTES=262144
    big = job("big")  # three 100 KiB env values: every field within its own bound, the whole over
    big["spec"]["template"]["env"] = {f"BLOB{i}": "x" * (100 * 1024) for i in range(3)}
    r = httpx.post(f"{url}/v1/jobs", json=big, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413 and r.json()["detail"].startswith("manifest: "), r.text
    assert "262144" in r.json()["detail"]  # the limit, 256 KiB
    with pytest.raises(InvalidSpec, match="^manifest: .* over the limit"):
        client.submit(big)
    assert rt.store.job("default", "big") is None
    small = job("small")
    small["spec"]["template"]["env"] = {"BLOB": "x" * (100 * 1024)}
    client.submit(small)  # under the cap: accepted


def test_the_cap_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobsched.server.service_impl import manifest_limit

    assert manifest_limit() == 1 << 20
    monkeypatch.setenv("JOBSCHED_MAX_MANIFEST_BYTES", "1000")
    assert manifest_limit() == 1000
    assert manifest_limit(50) == 50
    monkeypatch.setenv("JOBSCHED_MAX_MANIFEST_BYTES", "lots")
    with pytest.raises(ValueError, match="JOBSCHED_MAX_MANIFEST_BYTES"):
        manifest_limit()
