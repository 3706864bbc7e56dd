"""Kueue and Volcano manifests (their upstream samples: tests/migrate/corpus/{kueue,volcano}, Apache-2.0)
convert to gang TrainingJobs and Queues; the Kueue queue label is honoured on every path; anything
else is refused with one line that lists the accepted kinds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobsched.spec.errors import SpecError
from jobsched.spec.job import TrainingJob
from jobsched.spec.podgroup import merge_pod_groups
from jobsched.spec.sources import ACCEPTED_JOBS, ACCEPTED_QUEUES, to_queues, to_training_job

CORPUS = Path(__file__).parent / "corpus"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CORPUS / name).read_text()) if d]


# file, kind, replicas, queue, maxRetries
KUEUE_JOBS = [
    ("kueue/jobs_sample-job.yaml", "Job", 3, "user-queue", 6),
    ("kueue/jobs_sample-job-partial-admission.yaml", "Job", 20, "user-queue", 6),
    ("kueue/jobs_sample-pytorchjob.yaml", "PyTorchJob", 2, "user-queue", 3),
    ("kueue/jobs_sample-mxjob.yaml", "MXJob", 3, "user-queue", 0),  # restartPolicy Never: no retries
    ("kueue/jobs_sample-tfjob.yaml", "TFJob", 3, "user-queue", 0),
    ("kueue/pods-kueue_kueue-pod.yaml", "Pod", 1, "user-queue", 3),
]
# file, [(task, replicas)], queue, maxRetries, warnings that must be there
VOLCANO_JOBS = [
    ("volcano/job.yaml", [("default-nginx", 6)], "default", 5, ["spec.minAvailable: 3 of 6", "spec.plugins.ssh"]),
    ("volcano/job-plugin.yaml", [("default-nginx", 3)], "default", 5, ["spec.plugins.ssh"]),
    ("volcano/integrations_mpi_mpi-example.yaml", [("mpimaster", 1), ("mpiworker", 2)], "default", 3,
     ["spec.plugins.ssh"]),
    ("volcano/integrations_tensorflow_dist-mnist_tf-dist-mnist-example.yaml", [("ps", 1), ("worker", 2)], "default",
     3, ["spec.plugins.svc"]),
    ("volcano/integrations_mxnet_train_train-mnist-cpu.yaml", [("worker", 2), ("server", 2), ("scheduler", 1)],
     "default", 3, []),
    ("volcano/kubecon-2019-china_gang_mpi-example.yaml", [("mpimaster", 1), ("mpiworker", 3)], "default", 3, []),
    ("volcano/task-start-dependency_job.yaml", [("job-nginx1", 1), ("job-nginx2", 5), ("job-nginx3", 5)], "default", 3,
     ["spec.tasks[1].dependsOn", "spec.minAvailable: 1 of 11"]),
    ("volcano/MindSpore-example_mindspore_cpu_mindspore-cpu.yaml", [("pod", 8)], "default", 5, []),
]


@pytest.mark.parametrize(("file", "kind", "replicas", "queue", "retries"), KUEUE_JOBS, ids=[r[0] for r in KUEUE_JOBS])
def test_kueue_samples_convert_into_their_local_queue(file: str, kind: str, replicas: int, queue: str,
                                                      retries: int) -> None:
    (doc,) = docs(file)
    job, _ = to_training_job(doc)
    assert (doc["kind"], job.spec.replicas, job.spec.queue, job.spec.max_retries) == (kind, replicas, queue, retries)


@pytest.mark.parametrize(("file", "tasks", "queue", "retries", "expected"), VOLCANO_JOBS,
                         ids=[r[0] for r in VOLCANO_JOBS])
def test_volcano_jobs_convert_task_by_task(file: str, tasks: list[tuple[str, int]], queue: str, retries: int,
                                           expected: list[str]) -> None:
    (doc,) = docs(file)
    job, warnings = to_training_job(doc)
    assert [(r.name, r.replicas) for r in job.spec.roles] == [tuple(t) for t in tasks]
    assert (job.spec.queue, job.spec.max_retries) == (queue, retries)
    for w in expected:
        assert any(x.startswith(w) for x in warnings), (w, warnings)
    assert not any("CompleteJob" in w for w in warnings)  # TaskCompleted → CompleteJob: spec.successRoles
    assert job.spec.success_roles == [t["name"] for t in doc["spec"]["tasks"] if "CompleteJob" in str(t.get("policies"))]
    for i, task in enumerate(doc["spec"]["tasks"]):  # each task's own command and image
        rank = sum(t["replicas"] for t in doc["spec"]["tasks"][:i])
        c = task["template"]["spec"]["containers"][0]
        assert job.spec.replica(rank).argv() == [*c.get("command", []), *c.get("args", [])]
        assert job.spec.replica(rank).image == c["image"]


def test_volcano_policies_and_plugins_map_onto_retries_and_the_rendezvous_env() -> None:
    (doc,) = docs("volcano/job-plugin.yaml")
    doc["spec"]["policies"] = [{"event": "PodFailed", "action": "AbortJob"}]
    job, _ = to_training_job(doc)
    assert job.spec.max_retries == 0  # abort on the first failure
    doc["spec"]["policies"] = [{"events": ["PodFailed", "PodEvicted"], "action": "RestartJob"}]
    job, warnings = to_training_job(doc)
    assert job.spec.max_retries == 5 and not any("policies" in w for w in warnings)
    env = job.spec.replica(2).env
    assert env["VK_TASK_INDEX"] == env["VC_TASK_INDEX"] == "$(JOBSCHED_ROLE_INDEX)"
    assert env["VC_DEFAULT_NGINX_NUM"] == "3"


def test_batch_job_rules() -> None:
    (doc,) = docs("kueue/jobs_sample-job.yaml")
    more = copy.deepcopy(doc)
    more["spec"]["completions"] = 5
    with pytest.raises(SpecError, match=r"^spec.completions: 5 completions with parallelism 3: jobsched runs one gang"):
        to_training_job(more)
    held = copy.deepcopy(doc)
    del held["metadata"]["labels"]
    with pytest.raises(SpecError, match=r"^spec.suspend: true without a kueue.x-k8s.io/queue-name label"):
        to_training_job(held)
    del held["spec"]["suspend"]
    assert to_training_job(held)[0].spec.queue == "default"
    indexed = copy.deepcopy(doc)
    indexed["spec"].update(completionMode="Indexed", activeDeadlineSeconds=60)
    job, warnings = to_training_job(indexed)
    assert job.spec.template.env_dict()["JOB_COMPLETION_INDEX"] == "$(RANK)"
    assert "spec.activeDeadlineSeconds: not acted on by jobsched (ignored)" in warnings


@pytest.mark.parametrize("file", ["kueue/jobs_sample-job.yaml", "kueue/pods-kueue_kueue-pod.yaml",
                                  "kueue/jobs_sample-pytorchjob.yaml", "kueue/jobs_sample-mxjob.yaml",
                                  "kueue/jobs_sample-tfjob.yaml", "volcano/job.yaml"])
def test_the_kueue_queue_label_on_every_path(file: str) -> None:
    (doc,) = docs(file)
    doc["metadata"].setdefault("labels", {})["kueue.x-k8s.io/queue-name"] = "team-a"
    doc["spec"].pop("queue", None)  # Volcano's own queue field wins when set
    assert to_training_job(doc)[0].spec.queue == "team-a"


def test_kueue_cluster_queue_and_local_queue_become_a_queue_with_its_quota() -> None:
    queues, warnings = to_queues(docs("kueue/admin_single-clusterqueue-setup.yaml"))
    assert [(q.name, q.spec.quota) for q in queues] == [("user-queue", {"cpu": "9000m", "memory": str(36 * 2**30)})]
    assert warnings == []
    setup = docs("kueue/admin_single-clusterqueue-setup.yaml")
    cq = setup[1]["spec"]
    cq.update(cohort="research", preemption={"withinClusterQueue": "LowerPriority"}, queueingStrategy="StrictFIFO")
    cq["resourceGroups"][0]["flavors"].append(
        {"name": "spot", "resources": [{"name": "cpu", "nominalQuota": 3, "borrowingLimit": 1}]})
    (q,), warnings = to_queues(setup)
    assert q.spec.quota["cpu"] == "12000m" and q.spec.strategy == "StrictFIFO"
    assert any(w.startswith("ClusterQueue cluster-queue: spec.cohort: not acted on") for w in warnings)
    assert any("spec.preemption" in w for w in warnings)
    assert any(w.endswith(".borrowingLimit: not acted on by jobsched (ignored; no borrowing or lending)")
               for w in warnings)
    with pytest.raises(SpecError, match=r"ClusterQueue 'cluster-queue' is not in this file"):
        to_queues([setup[2]])


def test_volcano_queue_capability_and_weight() -> None:
    (q,), warnings = to_queues(docs("volcano/deployment_queue.yaml"))
    assert (q.name, q.spec.quota, q.spec.weight) == ("test", {"cpu": 2}, 1.0)
    assert warnings == ["spec.reclaimable: not acted on by jobsched (ignored)"]


@pytest.mark.parametrize("doc", [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
    {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": "x"}},
    {"apiVersion": "kubeflow.org/v1", "kind": "PaddleJob", "metadata": {"name": "x"}},
    {"apiVersion": "jobsched.io/v1alpha1", "kind": "Job", "metadata": {"name": "x"}},
])
def test_other_kinds_are_refused_with_the_accepted_kinds(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as e:
        to_training_job(doc)
    assert str(e.value) == (f"kind: {doc['kind']} ({doc['apiVersion']}) is not a job jobsched accepts; "
                            f"accepted: {ACCEPTED_JOBS}")
    assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match=r"kind: .* is not a queue jobsched accepts; accepted: ") as e:
        to_queues([doc])
    assert ACCEPTED_QUEUES in str(e.value)
    with pytest.raises(SpecError, match=r"^kind: LocalQueue \(kueue.x-k8s.io/v1beta1\) is a queue: apply it "):
        to_training_job(docs("kueue/admin_single-clusterqueue-setup.yaml")[2])


def test_a_kueue_pod_group_is_one_gang_with_a_role_per_pod() -> None:
    pods = docs("kueue/pods-kueue_kueue-pod-group.yaml")
    (merged,), warnings = merge_pod_groups(pods)
    job = TrainingJob.model_validate(merged)
    assert (job.name, job.spec.replicas, job.spec.queue, job.spec.max_retries) == ("sample-group", 2, "user-queue", 0)
    assert [(r.name, r.replicas) for r in job.spec.roles] == [("sample-leader", 1), ("sample-worker", 1)]
    assert "leader pod" in job.spec.roles[0].command[-1] and "worker pod" in job.spec.roles[1].command[-1]
    assert job.requests().cpu_milli == 3000 and warnings == []
    # Submitted alone (one document to the API), a grouped Pod is its own job, and says how to gang it.
    single, warnings = to_training_job(pods[0])
    assert single.spec.replicas == 1 and any("submit the group's Pods together" in w for w in warnings)


def test_identical_pods_of_a_group_are_one_role_and_the_largest_request_wins() -> None:
    leader, worker = docs("kueue/pods-kueue_kueue-pod-group.yaml")
    workers = []
    for i in range(3):
        w = copy.deepcopy(worker)
        w["metadata"]["annotations"]["kueue.x-k8s.io/pod-group-total-count"] = "4"
        w["metadata"]["generateName"] = f"w{i}-"
        workers.append(w)
    leader["metadata"]["annotations"]["kueue.x-k8s.io/pod-group-total-count"] = "4"
    leader["spec"]["containers"][0]["resources"]["requests"] = {"cpu": 1, "memory": "8Gi"}
    other = docs("kueue/pods-kueue_kueue-pod.yaml")[0]
    (out_other, merged), warnings = merge_pod_groups([other, leader, *workers])
    assert out_other is other  # documents outside a group are left as they are, in place
    job = TrainingJob.model_validate(merged)
    assert [(r.name, r.replicas) for r in job.spec.roles] == [("sample-leader", 1), ("w0", 3)]
    req = job.requests()
    assert (req.cpu_milli, req.memory) == (3000, 8 << 30)
    assert any("request different resources" in w for w in warnings)


@pytest.mark.parametrize("edit, message", [
    (lambda pods: pods[:1], r"1 Pod\(s\) in this file, but kueue.x-k8s.io/pod-group-total-count says 2"),
    (lambda pods: [pods[0], {**pods[1], "metadata": {**pods[1]["metadata"], "annotations": {
        "kueue.x-k8s.io/pod-group-total-count": "3"}}}], r"its Pods disagree on the total count \(2, 3\)"),
    (lambda pods: [{**p, "metadata": {**p["metadata"], "annotations": {}}} for p in pods],
     r"must be a whole number from 1 to 10000"),
])
def test_an_incomplete_or_inconsistent_pod_group_is_refused_naming_it(edit, message) -> None:
    with pytest.raises(SpecError, match=r"^metadata.annotations.kueue.x-k8s.io/pod-group-total-count: "
                                        r"pod group 'sample-group': " + message):
        merge_pod_groups(edit(docs("kueue/pods-kueue_kueue-pod-group.yaml")))


def test_every_pod_and_container_field_not_acted_on_is_named() -> None:
    (doc,) = docs("kueue/pods-kueue_kueue-pod.yaml")
    doc["spec"]["runtimeClassName"] = "nvidia"
    doc["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    doc["spec"]["containers"][0]["tty"] = True
    job, warnings = to_training_job(doc)
    assert "spec.containers[0].tty: not acted on by jobsched (ignored)" in warnings
    # The pod-spec fields TrainingJob's template takes are carried over, not warned about.
    assert not [w for w in warnings if "runtimeClassName" in w or "tolerations" in w]
    assert job.spec.template.runtime_class_name == "nvidia"
    assert job.spec.template.tolerations == [{"key": "gpu", "operator": "Exists"}]


def test_volcano_task_pod_fields_are_carried_and_differences_named() -> None:
    (doc,) = docs("volcano/integrations_tensorflow_dist-mnist_tf-dist-mnist-example.yaml")
    gpu = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    doc["spec"]["tasks"][0]["template"]["spec"]["tolerations"] = gpu
    job, warnings = to_training_job(doc)
    assert job.spec.template.tolerations == gpu  # the first task's; one pod template serves every replica
    assert any(w.startswith("spec.tasks[1].template.spec.tolerations: differs") for w in warnings), warnings
