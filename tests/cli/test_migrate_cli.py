"""Bringing manifests from elsewhere through the CLI, against a real server (local backend): files
of several documents, Kueue/Volcano queues, warnings printed at submit, refusals with exit code 2
and nothing stored."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cli.test_cli_errors import cli, stored

CORPUS = Path(__file__).parent.parent / "migrate" / "corpus"

BATCH_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels: {{kueue.x-k8s.io/queue-name: user-queue}}
spec:
  parallelism: 2
  completions: 2
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: python:3.11
        command: [{python}, -c, "pass"]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"""


def test_kueue_setup_then_a_file_of_jobs(live: Any, tmp_path: Path) -> None:
    r = cli("queue", "apply", str(CORPUS / "kueue" / "admin_single-clusterqueue-setup.yaml"))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "queue user-queue applied"
    assert "user-queue" in [q.name for q in live.service.queues()]
    f = tmp_path / "jobs.yaml"
    f.write_text(BATCH_JOB.format(name="one", python=sys.executable) + "---\n"
                 + BATCH_JOB.format(name="two", python=sys.executable).replace("suspend: true", "activeDeadlineSeconds: 9"))
    r = cli("submit", str(f))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["default/one submitted to queue user-queue (Pending)",
                                     "default/two submitted to queue user-queue (Pending)"]
    assert "warning: two: spec.activeDeadlineSeconds: not acted on by jobsched (ignored)" in r.stderr
    assert sorted(stored(live)) == ["one", "two"]


def test_elastic_policy_warning_is_printed_at_submit(live: Any, tmp_path: Path) -> None:
    doc = yaml.safe_load((CORPUS / "kubeflow" / "pytorch_simple.yaml").read_text())
    doc["spec"]["elasticPolicy"] = {"minReplicas": 2, "maxReplicas": 4}
    for rs in doc["spec"]["pytorchReplicaSpecs"].values():
        rs["template"]["spec"]["containers"][0]["command"] = [sys.executable, "-c", "pass"]
    path = tmp_path / "elastic.yaml"
    path.write_text(yaml.safe_dump(doc))
    r = cli("submit", str(path))
    assert r.exit_code == 0, r.output
    assert "warning: pytorch-simple: spec.elasticPolicy: jobsched runs a fixed gang of 2 replicas" in r.stderr


def test_entrypoint_only_replicas_are_refused_on_the_local_backend(live: Any) -> None:
    r = cli("submit", str(CORPUS / "kubeflow" / "pytorch_mnist_v1_pytorch_job_mnist_gloo.yaml"))
    assert r.exit_code == 2
    assert ("spec.roles[0] (Master): no command (the image's entrypoint would run), which only the Kubernetes "
            "backend can do; this server runs the local backend: set `command`, or run it on Kubernetes") in r.stderr
    assert stored(live) == []


def test_a_bad_document_stores_nothing_of_the_file(live: Any, tmp_path: Path) -> None:
    f = tmp_path / "jobs.yaml"
    f.write_text(BATCH_JOB.format(name="ok", python=sys.executable).replace("suspend: true", "completions: 2") + "---\n"
                 + BATCH_JOB.format(name="bad", python=sys.executable).replace("completions: 2", "completions: 4"))
    r = cli("submit", str(f))
    assert r.exit_code == 2
    assert "document 2: spec.completions: 4 completions with parallelism 2" in r.stderr
    assert stored(live) == []


def test_other_kinds_are_refused_with_the_accepted_kinds(live: Any, tmp_path: Path) -> None:
    f = tmp_path / "deploy.yaml"
    f.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n")
    r = cli("submit", str(f))
    assert r.exit_code == 2
    assert r.stderr.strip().endswith(
        "kind: Deployment (apps/v1) is not a job jobsched accepts; accepted: TrainingJob (jobsched.io), PyTorchJob, "
        "MXJob, TFJob (kubeflow.org), Job (batch/v1), Pod (v1), Job (batch.volcano.sh), JobSet (jobset.x-k8s.io)")
    r = cli("queue", "apply", str(f))
    assert r.exit_code == 2 and "is not a queue jobsched accepts; accepted: Queue (jobsched.io), ClusterQueue" in r.stderr
    assert stored(live) == []


def test_the_api_converts_and_refuses_by_kind(live: Any) -> None:
    import os

    import httpx

    url, auth = os.environ["JOBSCHED_URL"], {"Authorization": f"Bearer {os.environ['JOBSCHED_TOKEN']}"}
    r = httpx.post(f"{url}/v1/jobs", headers=auth, json={"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "metadata": {"name": "web"}, "spec": {}})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("kind: Deployment (apps/v1) is not a job jobsched accepts; accepted: ")
    doc = yaml.safe_load((CORPUS / "volcano" / "job.yaml").read_text())
    c = doc["spec"]["tasks"][0]["template"]["spec"]["containers"][0]
    c["command"], c["resources"] = [sys.executable, "-c", "pass"], {"requests": {"cpu": "100m", "memory": "64Mi"}}
    r = httpx.post(f"{url}/v1/jobs", headers=auth, json=doc)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["replicas"] == 6 and body["labels"]["jobsched.io/source-kind"] == "VolcanoJob"
    assert "spec.minAvailable: 3 of 6: jobsched starts all 6 replicas together or none" in [
        e["message"] for e in body["events"] if e["reason"] == "NotHonoured"]


def test_the_sdk_submits_a_file_of_jobs_and_applies_kueue_queues(live: Any, tmp_path: Path) -> None:
    from jobsched.sdk.client import Client

    c = Client()
    queues, warnings = c.apply_queues(CORPUS / "kueue" / "admin_single-clusterqueue-setup.yaml")
    assert [q.name for q in queues] == ["user-queue"] and warnings == []
    f = tmp_path / "jobs.yaml"
    f.write_text(BATCH_JOB.format(name="s1", python=sys.executable) + "---\n" + BATCH_JOB.format(name="s2", python=sys.executable))
    assert [(s.name, s.queue, s.replicas) for s in c.submit_file(f)] == [("s1", "user-queue", 2), ("s2", "user-queue", 2)]


def _pod_group(tmp_path: Path, keep: int = 2) -> Path:
    pods = [d for d in yaml.safe_load_all((CORPUS / "kueue" / "pods-kueue_kueue-pod-group.yaml").read_text()) if d]
    for p in pods:
        c = p["spec"]["containers"][0]
        role = p["metadata"]["generateName"].rstrip("-")
        c["command"] = [sys.executable, "-c", f"import os; print('{role}', os.environ['RANK'], os.environ['WORLD_SIZE'])"]
        c["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    path = tmp_path / "group.yaml"
    path.write_text(yaml.safe_dump_all(pods[:keep]))
    return path


def test_a_kueue_pod_group_file_runs_as_one_gang(live: Any, tmp_path: Path) -> None:
    assert cli("queue", "apply", str(CORPUS / "kueue" / "admin_single-clusterqueue-setup.yaml")).exit_code == 0
    r = cli("submit", str(_pod_group(tmp_path)))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["default/sample-group submitted to queue user-queue (Pending)"]
    assert stored(live) == ["sample-group"]
    deadline = time.monotonic() + 120
    while not (st := live.service.get("default", "sample-group")).phase.is_terminal():
        assert time.monotonic() < deadline, st.phase
        time.sleep(0.1)
    assert st.phase.value == "Succeeded" and st.replicas == 2
    lines = sorted(ln.split(" ", 2)[2] for ln in live.service.logs("default", "sample-group")[0].splitlines())
    assert lines == ["sample-leader 0 2", "sample-worker 1 2"]  # one gang: both ranks of one world


def test_an_incomplete_pod_group_file_is_refused_and_nothing_stored(live: Any, tmp_path: Path) -> None:
    r = cli("submit", str(_pod_group(tmp_path, keep=1)))
    assert r.exit_code == 2
    assert "pod group 'sample-group': 1 Pod(s) in this file, but kueue.x-k8s.io/pod-group-total-count says 2" in r.output
    assert stored(live) == []
