"""Tenants against a real server (Runtime + the app as the server builds it, over HTTP on loopback,
real SQLite): per-user tokens with roles and namespaces, revocation, hashed storage, the audit log."""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobsched import Client
from jobsched.sdk import ConflictError, Forbidden, InvalidSpec, Unauthorized
from tests.api.live import live_runtime


def job(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"maxRetries": 0, "template": {"command": [sys.executable, "-c", "pass"],
                                                   "resources": {"requests": {"memory": "64Mi"}}}}}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    with live_runtime(home, workflows=True) as (url, token, _rt):
        admin = Client(url=url, token=token)
        toks = {name: admin.admin.create_token(name, role=role, namespaces=ns).token
                for name, role, ns in (("alice", "user", ["team-a"]), ("vera", "viewer", []),
                                       ("vic", "viewer", ["team-a"]))}
        admin.submit(job("a1", "team-a"))
        admin.submit(job("b1", "team-b"))
        yield {"url": url, "home": home, "admin": admin, "tokens": toks,
               "as": lambda who: Client(url=url, token=toks[who])}
        admin.close()


def test_user_sees_submits_and_cancels_only_in_its_namespaces(srv: dict[str, Any]) -> None:
    alice = srv["as"]("alice")
    assert alice.submit(job("a2", "team-a")).namespace == "team-a"
    assert alice.cancel("a2", namespace="team-a").name == "a2"
    assert {(j.namespace, j.name) for j in alice.list()} == {("team-a", "a1"), ("team-a", "a2")}
    with pytest.raises(Forbidden, match="alice.*namespace 'team-b'"):
        alice.submit(job("b2", "team-b"))
    for call in (lambda: alice.get("b1", "team-b"), lambda: alice.cancel("b1", "team-b"),
                 lambda: alice.events("b1", "team-b"), lambda: alice.logs("b1", namespace="team-b"),
                 lambda: alice.list(namespace="team-b"),
                 lambda: alice.workflows.submit({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                                 "metadata": {"name": "w", "namespace": "team-b"},
                                                 "spec": {"entrypoint": "x", "templates": []}}),
                 lambda: alice.workflows.get("w", namespace="team-b")):
        with pytest.raises(Forbidden, match="team-b"):
            call()
    assert srv["admin"].get("b1", "team-b").phase.value != "Cancelled"
    # queues and nodes are readable; applying a queue and managing tokens need admin
    assert "default" in {q.name for q in alice.queues()} and alice.nodes()
    with pytest.raises(Forbidden, match="role admin"):
        alice.apply_queue({"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": "mine"}})
    with pytest.raises(Forbidden, match="role admin"):
        alice.admin.create_token("mallory", role="admin")
    r = httpx.post(f"{srv['url']}/v1/jobs/team-b/b1/cancel", headers={"Authorization": f"Bearer {srv['tokens']['alice']}"})
    assert r.status_code == 403 and "team-b" in r.json()["detail"]


def test_viewers_only_read(srv: dict[str, Any]) -> None:
    vera, vic = srv["as"]("vera"), srv["as"]("vic")
    assert {"a1", "b1"} <= {j.name for j in vera.list()} and vera.get("b1", "team-b").name == "b1"
    assert {j.namespace for j in vic.list()} == {"team-a"}
    with pytest.raises(Forbidden, match="team-b"):
        vic.get("b1", "team-b")
    for v in (vera, vic):
        with pytest.raises(Forbidden, match="read-only"):
            v.submit(job("v1", "team-a"))
        with pytest.raises(Forbidden, match="read-only"):
            v.cancel("a1", "team-a")


def test_admin_does_everything(srv: dict[str, Any]) -> None:
    admin = srv["admin"]
    assert {"team-a", "team-b"} <= {j.namespace for j in admin.list()}
    admin.submit(job("b3", "team-b"))
    assert admin.cancel("b3", "team-b").name == "b3"
    assert admin.apply_queue({"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue",
                              "metadata": {"name": "gpu"}}).name == "gpu"
    listed = {t.name: t for t in admin.admin.tokens()}
    assert listed["admin"].source == "home" and listed["alice"].namespaces == ["team-a"]
    assert "token" not in json.dumps([t.model_dump() for t in listed.values()])


def test_revoked_token_gets_401(srv: dict[str, Any]) -> None:
    admin = srv["admin"]
    t = admin.admin.create_token("temp", role="viewer").token
    with Client(url=srv["url"], token=t) as temp:
        assert temp.list() is not None
        assert admin.admin.revoke_token("temp").revoked_at is not None
        with pytest.raises(Unauthorized, match="invalid bearer token"):
            temp.list()
    with pytest.raises(ConflictError, match="already exists"):
        admin.admin.create_token("temp", role="viewer")


def test_bad_token_requests_name_the_field(srv: dict[str, Any]) -> None:
    admin = srv["admin"]
    with pytest.raises(InvalidSpec, match="^namespaces: .*at least one namespace"):
        admin.admin.create_token("nobody", role="user")
    with pytest.raises(InvalidSpec, match="name: .*not a valid token name"):
        admin.admin.create_token("bad name", role="viewer")
    with pytest.raises(InvalidSpec, match=r"namespaces\[0\]: .*not a valid name"):
        admin.admin.create_token("x", role="user", namespaces=["Team_A"])
    with pytest.raises(InvalidSpec, match="role"):
        admin.admin.create_token("x", role="root")


def test_tokens_stored_hashed(srv: dict[str, Any]) -> None:
    home: Path = srv["home"]
    data = b"".join(p.read_bytes() for p in home.glob("state.db*"))
    for tok in srv["tokens"].values():
        assert tok.encode() not in data
        assert hashlib.sha256(tok.encode()).hexdigest().encode() in data


def test_audit_log_says_who_what_where_and_outcome(srv: dict[str, Any]) -> None:
    alice, admin = srv["as"]("alice"), srv["admin"]
    alice.submit(job("a9", "team-a"))
    with pytest.raises(Forbidden):
        alice.cancel("b1", "team-b")
    admin.cancel("b1", "team-b")
    secret = admin.admin.create_token("carol", role="user", namespaces=["team-c"]).token
    assert httpx.post(f"{srv['url']}/v1/jobs", json=job("x", "team-a"),
                      headers={"Authorization": "Bearer guessed"}).status_code == 401
    path = srv["home"] / "audit.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert secret not in text
    lines = [json.loads(ln) for ln in text.splitlines()]

    def find(**want: Any) -> dict[str, Any]:
        hits = [e for e in lines if all(e.get(k) == v for k, v in want.items())]
        assert hits, f"no audit line with {want}"
        return hits[-1]

    sub = find(who="alice", method="POST", path="/v1/jobs", object="team-a/a9", status=201)
    assert sub["role"] == "user" and sub["client"].startswith("127.0.0.1:") and sub["time"].endswith("Z")
    find(who="alice", method="POST", path="/v1/jobs/team-b/b1/cancel", object="team-b/b1", status=403)
    find(who="admin", method="POST", path="/v1/jobs/team-b/b1/cancel", object="team-b/b1", status=200)
    find(who="admin", method="POST", path="/v1/tokens", object="token/carol", status=201)
    find(who=None, method="POST", path="/v1/jobs", status=401)
    assert not any(e["method"] == "GET" for e in lines)  # reads are not audited
    latest = admin.admin.audit(limit=3)
    assert [(e.object, e.status) for e in latest] == [("team-b/b1", 200), ("token/carol", 201), (None, 401)]
    with pytest.raises(Forbidden):
        alice.admin.audit()
