"""jobsched as the scheduler of the training-operator's and Volcano's custom resources, on the real
test control plane: the upstream CRDs (training-operator v1.7.0, tests/k8s/data/kubeflow-crds;
Volcano v1.8.2, tests/k8s/data/volcano-crds) installed, a PyTorchJob / MXJob / Volcano Job created
with the Kubernetes API is run as one gang, each replica with its role's command, and its status
written as their controllers write it."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest
import yaml

from jobsched.server.runtime import Runtime
from tests.k8s.test_backend import crds, label, pods_of, set_outcome, until  # noqa: F401 (fixture)

pytestmark = pytest.mark.k8s
DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).resolve().parents[1] / "migrate" / "corpus" / "kubeflow"
VOLCANO = Path(__file__).resolve().parents[1] / "migrate" / "corpus" / "volcano"


@pytest.fixture(scope="module")
def kubeflow_crds(crds):  # noqa: F811 (the fixture imported above)
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ext = client.ApiextensionsV1Api(crds)
    for f in sorted([*DATA.glob("kubeflow-crds/*.yaml.gz"), *DATA.glob("volcano-crds/*.yaml.gz")]):
        body = yaml.safe_load(gzip.decompress(f.read_bytes()))
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as e:
            if e.status != 409:
                raise
    until(lambda: all(any(c.type == "Established" and c.status == "True"
                          for c in (ext.read_custom_resource_definition(p).status.conditions or []))
                      for p in ("pytorchjobs.kubeflow.org", "mxjobs.kubeflow.org", "tfjobs.kubeflow.org",
                                "jobs.batch.volcano.sh")), what="Kubeflow and Volcano CRDs established")
    return crds


@pytest.fixture
def rt(k8s_cluster, kubeflow_crds, tmp_path):
    r = Runtime(tmp_path / "home", backend="kubernetes",
                backend_options={"kubeconfig": str(k8s_cluster.kubeconfig), "lease_name": f"js-{uuid.uuid4().hex[:6]}",
                                 "watch_kubeflow": True, "watch_volcano": True, "watch_jobs": True})
    r.start()
    until(r.backend.is_leader, what="leadership")
    yield r
    r.stop()


def _example(file: str, name: str, pool: str) -> dict:
    doc = yaml.safe_load((CORPUS / file).read_text())
    doc["metadata"] = {"name": name, "namespace": "default"}
    for rs in next(v for k, v in doc["spec"].items() if k.endswith("ReplicaSpecs")).values():
        pod = rs["template"]["spec"]
        pod["nodeSelector"] = {"pool": pool}
        pod["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "256Mi"}}
    return doc


def _status(custom, plural: str, name: str) -> dict:
    return custom.get_namespaced_custom_object("kubeflow.org", "v1", "default", plural, name).get("status") or {}


def _true(status: dict, typ: str) -> bool:
    return any(c["type"] == typ and c["status"] == "True" for c in status.get("conditions", []))


def test_pytorchjob_object_is_scheduled_as_a_gang_and_its_status_written(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(2, cpu="2", memory="4Gi", labels={"pool": pool})
    assert rt.backend.kubeflow.plurals == ["pytorchjobs.kubeflow.org", "mxjobs.kubeflow.org", "tfjobs.kubeflow.org",
                                           "jobs.batch.volcano.sh", "jobs.batch"]
    custom = rt.backend.custom
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs",
                                           _example("pytorch_simple.yaml", "ptj-watched", pool))
    core = rt.backend.core
    pods = until(lambda: [p for p in pods_of(core, "ptj-watched") if p.status.phase == "Running"] if len(
        pods_of(core, "ptj-watched")) == 2 else None, timeout=60, what="both replicas running")
    assert {p.spec.containers[0].command[0] for p in pods} == {"python3"}
    st = until(lambda: (s := _status(custom, "pytorchjobs", "ptj-watched")) and _true(s, "Running") and s,
               what="Running condition")
    assert st["replicaStatuses"] == {"Master": {"active": 1, "succeeded": 0, "failed": 0},
                                     "Worker": {"active": 1, "succeeded": 0, "failed": 0}}
    set_outcome(core, pods, "Succeeded")
    st = until(lambda: (s := _status(custom, "pytorchjobs", "ptj-watched")) and _true(s, "Succeeded") and s,
               timeout=60, what="Succeeded condition")
    assert st["completionTime"] and st["startTime"]


def test_mxjob_roles_run_their_own_commands_or_the_image_entrypoint(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="4Gi", labels={"pool": pool})
    custom = rt.backend.custom
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "mxjobs",
                                           _example("mxnet_mxjob_dist_v1.yaml", "mxj-watched", pool))
    core = rt.backend.core
    pods = until(lambda: (ps := pods_of(core, "mxj-watched")) and len(ps) == 3 and ps, timeout=60, what="3 pods")
    by_rank = {int(p.metadata.labels["jobsched.io/replica"]): p.spec.containers[0] for p in pods}
    env = {r: {e.name: e.value for e in c.env} for r, c in by_rank.items()}
    assert [env[r]["DMLC_ROLE"] for r in range(3)] == ["scheduler", "server", "worker"]
    assert env[2]["DMLC_PS_ROOT_URI"] == env[2]["MASTER_ADDR"] and env[2]["MASTER_ADDR"].startswith("mxj-watched-a0-0.")
    mx = json.loads(env[1]["MX_CONFIG"])  # MXNet's cluster spec names the gang's pods
    assert mx["task"] == {"type": "server", "index": 0}
    assert mx["cluster"]["scheduler"] == [{"url": env[2]["MASTER_ADDR"], "port": 9091}]
    assert by_rank[0].command is None and by_rank[1].command is None  # the image's entrypoint
    assert by_rank[2].command == ["python"]
    custom.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "mxjobs", "mxj-watched")
    until(lambda: rt.service.get("default", "mxj-watched").phase.value in ("Failed", "Cancelled", "Succeeded")
          or rt.service.get("default", "mxj-watched").reason == "Cancelled", timeout=60, what="cancelled")


def test_an_invalid_object_gets_a_failed_condition_saying_why(rt):
    custom = rt.backend.custom
    doc = _example("pytorch_simple.yaml", "ptj-invalid", "none")
    doc["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", doc)
    st = until(lambda: (s := _status(custom, "pytorchjobs", "ptj-invalid")) and _true(s, "Failed") and s,
               what="Failed condition")
    assert st["conditions"][-1]["message"] == ("spec.pytorchReplicaSpecs.Master.replicas: a PyTorchJob has "
                                               "exactly one Master")


def test_volcano_job_completes_when_its_workers_do(rt, k8s_cluster):
    """Volcano's TensorFlow example: the worker task's TaskCompleted → CompleteJob policy; once both
    workers succeeded the parameter server is stopped and the Job is Completed."""
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="4Gi", labels={"pool": pool})
    doc = yaml.safe_load((VOLCANO / "integrations_tensorflow_dist-mnist_tf-dist-mnist-example.yaml").read_text())
    doc["metadata"] = {"name": "vcj-watched", "namespace": "default"}
    for task in doc["spec"]["tasks"]:
        task["template"]["spec"]["nodeSelector"] = {"pool": pool}
        task["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "256Mi"}}
    custom = rt.backend.custom
    custom.create_namespaced_custom_object("batch.volcano.sh", "v1alpha1", "default", "jobs", doc)
    core = rt.backend.core
    pods = until(lambda: (ps := [p for p in pods_of(core, "vcj-watched") if p.status.phase == "Running"])
                 and len(ps) == 3 and ps, timeout=60, what="3 pods running")
    env = {int(p.metadata.labels["jobsched.io/replica"]): {e.name: e.value for e in p.spec.containers[0].env}
           for p in pods}
    assert [env[r]["VK_TASK_INDEX"] for r in range(3)] == ["0", "0", "1"]
    assert env[0]["VC_WORKER_NUM"] == "2"
    vs = lambda: custom.get_namespaced_custom_object("batch.volcano.sh", "v1alpha1", "default", "jobs",  # noqa: E731
                                                     "vcj-watched").get("status") or {}
    until(lambda: vs().get("state", {}).get("phase") == "Running", what="Running phase")
    set_outcome(core, [p for p in pods if p.metadata.labels["jobsched.io/replica"] != "0"], "Succeeded")
    st = until(lambda: (s := vs()) and s.get("state", {}).get("phase") == "Completed" and s, timeout=60,
               what="Completed phase")
    assert st["succeeded"] == 3 and st["retryCount"] == 0
    assert rt.service.get("default", "vcj-watched").phase.value == "Succeeded"


def test_a_batch_job_managed_by_jobsched_runs_as_a_gang_and_completes(rt, k8s_cluster):
    """A Kueue user's Job, opted in with spec.managedBy (the Job controller leaves it alone): one gang
    of `parallelism` pods in the labelled queue; its status written as the Job controller would."""
    from kubernetes import client

    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="4Gi", labels={"pool": pool})
    rt.service.apply_queue({"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": "user-queue"}})
    doc = yaml.safe_load((CORPUS.parent / "kueue" / "jobs_sample-job.yaml").read_text())
    doc["metadata"] = {"name": "batch-managed", "namespace": "default", "labels": doc["metadata"]["labels"]}
    doc["spec"].update(managedBy="jobsched.io/scheduler", suspend=False)
    doc["spec"]["template"]["spec"]["nodeSelector"] = {"pool": pool}
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    batch = client.BatchV1Api(rt.backend.api_client)
    batch.create_namespaced_job("default", doc)
    other = {**doc, "metadata": {"name": "batch-not-ours", "namespace": "default"}}
    other["spec"] = {k: v for k, v in doc["spec"].items() if k != "managedBy"}
    batch.create_namespaced_job("default", other)
    core = rt.backend.core
    pods = until(lambda: (ps := [p for p in pods_of(core, "batch-managed") if p.status.phase == "Running"])
                 and len(ps) == 3 and ps, timeout=60, what="3 pods running")
    assert rt.service.get("default", "batch-managed").queue == "user-queue"
    assert [c.args for c in (p.spec.containers[0] for p in pods)] == [["30s"]] * 3  # the image's entrypoint
    set_outcome(core, pods, "Succeeded")
    job = until(lambda: (j := batch.read_namespaced_job_status("batch-managed", "default")).status.conditions
                and any(c.type == "Complete" and c.status == "True" for c in j.status.conditions) and j,
                timeout=60, what="Complete condition")
    assert job.status.succeeded == 3 and job.status.completion_time is not None
    try:
        rt.service.get("default", "batch-not-ours")
        raise AssertionError("a Job without managedBy was picked up")
    except LookupError:
        pass


def test_a_failed_managed_batch_job_gets_the_failed_conditions(rt, k8s_cluster):
    from kubernetes import client

    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="4Gi", labels={"pool": pool})
    doc = yaml.safe_load((CORPUS.parent / "kueue" / "jobs_sample-job.yaml").read_text())
    doc["metadata"] = {"name": "batch-fails", "namespace": "default"}
    doc["spec"].update(managedBy="jobsched.io/scheduler", suspend=False, backoffLimit=0, parallelism=1, completions=1)
    doc["spec"]["template"]["spec"]["nodeSelector"] = {"pool": pool}
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    batch = client.BatchV1Api(rt.backend.api_client)
    batch.create_namespaced_job("default", doc)
    core = rt.backend.core
    pods = until(lambda: [p for p in pods_of(core, "batch-fails") if p.status.phase == "Running"] or None,
                 timeout=60, what="pod running")
    set_outcome(core, pods, "Failed")
    job = until(lambda: (j := batch.read_namespaced_job_status("batch-fails", "default")).status.conditions
                and any(c.type == "Failed" and c.status == "True" for c in j.status.conditions) and j,
                timeout=60, what="Failed condition")
    assert [c.type for c in job.status.conditions] == ["FailureTarget", "Failed"] and job.status.failed == 1
