"""The template's pod-spec fields (spec/podtemplate.py): accepted as Kubernetes writes them and kept
camelCase, checked by the Kubernetes client's models, bad input a 422 naming the field with nothing
stored, and the local backend warning once that it ignores them. The real app over a real service
and SQLite store in a temporary home (the controller is not started: nothing runs)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from jobsched.server.app import create_app
from jobsched.server.runtime import Runtime
from jobsched.spec import TrainingJob
from jobsched.spec.errors import format_validation_error
from jobsched.spec.kubeflow import convert

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
FULL = {
    "tolerations": [GPU_TOLERATION, {"key": "spot", "value": "true", "effect": "NoExecute", "tolerationSeconds": 60}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100"]}]}]}}},
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "imagenet", "readOnly": True}},
                {"name": "cfg", "configMap": {"name": "train-cfg"}}],
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}, {"name": "cfg", "mountPath": "/etc/cfg"}],
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccountName": "trainer",
    "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
    "containerSecurityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
    "priorityClassName": "high-priority",
    "runtimeClassName": "nvidia",
    "shmSize": "16Gi",
}


def manifest(**template: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "j"},
            "spec": {"template": {"command": ["true"], "resources": {"requests": {"memory": "64Mi"}}, **template}}}


def error_of(m: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        TrainingJob.model_validate(m)
    return format_validation_error(e.value)


def test_the_fields_ml_jobs_use_are_accepted_and_reach_the_pod_camelcase():
    job = TrainingJob.model_validate(manifest(**FULL))
    pod, container = job.spec.template.pod_fields()
    assert pod["tolerations"][0] == GPU_TOLERATION
    assert pod["tolerations"][1]["tolerationSeconds"] == 60
    assert pod["affinity"] == FULL["affinity"]
    assert pod["serviceAccountName"] == "trainer" and pod["runtimeClassName"] == "nvidia"
    assert pod["priorityClassName"] == "high-priority" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["securityContext"] == {"runAsUser": 1000, "fsGroup": 2000}
    assert container["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}
    # shmSize: an emptyDir of medium Memory on /dev/shm, beside the user's volumes
    assert pod["volumes"][-1] == {"name": "jobsched-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}
    assert container["volumeMounts"][-1] == {"name": "jobsched-shm", "mountPath": "/dev/shm"}
    assert [v["name"] for v in pod["volumes"]] == ["data", "cfg", "jobsched-shm"]
    # round trip: the stored manifest validates again to the same template
    again = TrainingJob.model_validate(job.to_manifest())
    assert again.spec.template.pod_fields() == (pod, container)


def test_snake_case_sub_fields_are_normalised_to_what_kubernetes_takes():
    job = TrainingJob.model_validate(manifest(volumes=[{"name": "d", "empty_dir": {"size_limit": "1Gi"}}]))
    assert job.spec.template.volumes == [{"name": "d", "emptyDir": {"sizeLimit": "1Gi"}}]


@pytest.mark.parametrize(("template", "path", "words"), [
    ({"tolerations": [{"key": "a", "effect": "NoWay"}]}, "spec.template.tolerations[0].effect", "NoSchedule"),
    ({"tolerations": [{"key": "a", "operator": "Like"}]}, "spec.template.tolerations[0].operator", "Exists"),
    ({"tolerations": [{"key": "a", "tolerationSeconds": "soon"}]},
     "spec.template.tolerations[0].tolerationSeconds", "integer"),
    ({"tolerations": [{"key": "a", "colour": "red"}]}, "spec.template.tolerations[0].colour", "unknown field"),
    ({"tolerations": [{"value": "x"}]}, "spec.template.tolerations[0].operator", "must be Exists"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a"}]}]}}}},
     "spec.template.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].operator", "required"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]}}}},
     "spec.template.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].values", "integer"),
    ({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}},
     "spec.template.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "1 to 100"),
    ({"volumes": [{"name": "d"}], "volumeMounts": [{"name": "e", "mountPath": "/d"}]},
     "spec.template.volumeMounts[0].name", "no volume named 'e'"),
    ({"volumes": [{"name": "d"}], "volumeMounts": [{"name": "d"}]},
     "spec.template.volumeMounts[0].mountPath", "required"),
    ({"volumes": [{"name": "checkpoints"}]}, "spec.template.volumes[0].name", "reserved"),
    ({"volumes": [{"name": "d"}, {"name": "d"}]}, "spec.template.volumes[1].name", "twice"),
    ({"volumes": [{"name": "d"}], "volumeMounts": [{"name": "d", "mountPath": "/dev/shm"}], "shmSize": "1Gi"},
     "spec.template.volumeMounts[0].mountPath", "shmSize"),
    ({"securityContext": {"runAsUser": "root"}}, "spec.template.securityContext.runAsUser", "integer"),
    ({"serviceAccountName": "Not_A_Name"}, "spec.template.serviceAccountName", "not a valid name"),
    ({"shmSize": "lots"}, "spec.template.shmSize", ""),
    ({"shmSize": "0"}, "spec.template.shmSize", "positive"),
    ({"imagePullSecrets": "regcred"}, "spec.template.imagePullSecrets", "list"),
])
def test_bad_pod_fields_name_the_field(template, path, words):
    msg = error_of(manifest(**template))
    assert msg.startswith(f"{path}: "), msg
    assert words in msg


def test_ttl_seconds_after_finished_is_bounded():
    m = manifest()
    m["spec"]["ttlSecondsAfterFinished"] = -1
    assert error_of(m).startswith("spec.ttlSecondsAfterFinished: ")
    m["spec"]["ttlSecondsAfterFinished"] = 30
    assert TrainingJob.model_validate(m).spec.ttl_seconds_after_finished == 30


def test_kubeflow_conversion_carries_the_pod_fields_over():
    pod = {k: FULL[k] for k in ("tolerations", "affinity", "volumes", "imagePullSecrets", "serviceAccountName",
                                "securityContext", "priorityClassName", "runtimeClassName")}
    container = {"name": "pytorch", "image": "img", "command": ["python", "train.py"],
                 "volumeMounts": FULL["volumeMounts"], "securityContext": FULL["containerSecurityContext"]}
    worker = {"replicas": 2, "template": {"spec": {**pod, "containers": [container]}}}
    pj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "pj"},
          "spec": {"pytorchReplicaSpecs": {"Master": {**copy.deepcopy(worker), "replicas": 1}, "Worker": worker}}}
    job, warnings = convert(pj)
    assert not [w for w in warnings if "ignored" in w], warnings
    t = job.spec.template
    assert t.tolerations == FULL["tolerations"] and t.affinity == FULL["affinity"]
    assert t.volume_mounts == FULL["volumeMounts"] and t.service_account_name == "trainer"
    assert t.container_security_context == FULL["containerSecurityContext"]
    differing = copy.deepcopy(pj)
    differing["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["tolerations"] = []
    _, warnings = convert(differing)
    assert "spec.pytorchReplicaSpecs.Worker.template.spec.tolerations: differs from Master's; Master's is used " \
        "for every replica (one pod template)" in warnings


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("home"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt.service, rt.metrics, TOKEN), raise_server_exceptions=False)


def test_api_bad_toleration_is_a_422_naming_the_field_and_nothing_is_stored(client, rt):
    r = client.post("/v1/jobs", content=json.dumps(manifest(tolerations=[{"key": "a", "effect": "Never"}])),
                    headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("spec.template.tolerations[0].effect: ")
    assert rt.service.list() == []


def test_local_backend_accepts_pod_only_fields_with_one_warning(client, rt):
    m = manifest(**FULL)
    m["metadata"]["name"] = "local-k8s-fields"
    m["spec"]["ttlSecondsAfterFinished"] = 60
    r = client.post("/v1/jobs", content=json.dumps(m), headers=AUTH)
    assert r.status_code in (200, 201), r.text
    st = rt.service.get("default", "local-k8s-fields")
    warned = [e.message for e in st.events if e.reason == "NotHonoured"]
    assert len(warned) == 1, warned
    assert "spec.template.volumes" in warned[0] and "spec.template.shmSize" in warned[0]
    assert "tolerations" not in warned[0] and "affinity" not in warned[0]  # placement acts on these
    assert "spec.ttlSecondsAfterFinished" in warned[0] and "local backend" in warned[0]


def test_kubeflow_bad_pod_field_names_the_kubeflow_path():
    from jobsched.spec.errors import SpecError

    spec = {"tolerations": [{"key": "a", "tolerationSeconds": "soon"}],
            "containers": [{"name": "pytorch", "image": "img", "command": ["python"],
                            "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}
    pj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "pj"},
          "spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 1, "template": {"spec": spec}}}}}
    with pytest.raises(SpecError) as e:
        convert(copy.deepcopy(pj))
    assert str(e.value) == ("spec.pytorchReplicaSpecs.Worker.template.spec.tolerations[0].tolerationSeconds: "
                            "input should be a valid integer")
    spec["tolerations"] = []
    with pytest.raises(SpecError) as e:
        convert(pj)
    assert str(e.value).startswith("spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].volumeMounts[0]"
                                   ".name: no volume named 'nope'")
