"""Kubeflow PyTorchJob / MXJob manifests converted to gang TrainingJobs, and run on the local backend."""

from __future__ import annotations

import copy
import json
import sys
import time
from typing import Any

import pytest
import yaml

from jobsched.spec.errors import SpecError
from jobsched.spec.kubeflow import convert

PYTORCHJOB = yaml.safe_load(f"""
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {{name: ptj, labels: {{team: nlp}}}}
spec:
  runPolicy:
    backoffLimit: 2
    cleanPodPolicy: None
    schedulingPolicy: {{queue: default, minAvailable: 3, priorityClass: high}}
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: pytorch/pytorch:2.2
            command: [{sys.executable}, -c]
            args: ["import os; print(*[os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'ROLE')])"]
            env: [{{name: ROLE, value: master}}]
            resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{memory: 128Mi}}}}
    Worker:
      replicas: 2
      restartPolicy: OnFailure
      template:
        spec:
          volumes: [{{name: data, emptyDir: {{}}}}]
          containers:
          - name: pytorch
            image: pytorch/pytorch:2.2
            command: [{sys.executable}, -c]
            args: ["import os; print(*[os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'ROLE')])"]
            env: [{{name: ROLE, value: worker}}]
            volumeMounts: [{{name: data, mountPath: /data}}]
            resources: {{requests: {{cpu: 200m, memory: 64Mi}}, limits: {{memory: 96Mi}}}}
""")

MXJOB = yaml.safe_load(f"""
apiVersion: kubeflow.org/v1
kind: MXJob
metadata: {{name: mxj}}
spec:
  jobMode: MXTrain
  mxReplicaSpecs:
    Scheduler:
      replicas: 1
      template: {{spec: {{containers: [{{name: mxnet, image: mxnet, command: [{sys.executable}, -c, PROG]}}]}}}}
    Server:
      replicas: 1
      template: {{spec: {{containers: [{{name: mxnet, image: mxnet, command: [{sys.executable}, -c, PROG]}}]}}}}
    Worker:
      replicas: 2
      template: {{spec: {{containers: [{{name: mxnet, image: mxnet, command: [{sys.executable}, -c, PROG]}}]}}}}
""".replace("PROG", json.dumps(
    "import os; print(os.environ['RANK'], *[os.environ[k] for k in ('DMLC_ROLE', 'DMLC_NUM_SERVER', "
    "'DMLC_NUM_WORKER', 'DMLC_PS_ROOT_URI')], os.environ['DMLC_PS_ROOT_PORT'] == os.environ['MASTER_PORT'])")))


def test_pytorchjob_converts_to_one_gang() -> None:
    job, warnings = convert(copy.deepcopy(PYTORCHJOB))
    s = job.spec
    assert s.replicas == 3 and s.queue == "default" and s.priority == 100 and s.max_retries == 2
    prog = PYTORCHJOB["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["args"][0]
    assert [(r.name, r.replicas) for r in s.roles] == [("Master", 1), ("Worker", 2)]
    assert [s.replica(i).argv() for i in range(3)] == [[sys.executable, "-c", prog]] * 3
    assert [s.replica(i).env["ROLE"] for i in range(3)] == ["master", "worker", "worker"]
    assert s.template.image == "pytorch/pytorch:2.2"
    # the largest of each resource across replica types
    assert s.template.resources.requests == {"cpu": "200m", "memory": "64Mi"}
    assert s.template.resources.limits == {"memory": "128Mi"}
    assert job.metadata.labels == {"team": "nlp", "jobsched.io/source-kind": "PyTorchJob"}
    assert any(w.startswith("spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].volumeMounts")
               for w in warnings)
    assert "spec.runPolicy.cleanPodPolicy: not acted on by jobsched (ignored)" in warnings


def test_elastic_policy_and_scheduling_warnings() -> None:
    doc = copy.deepcopy(PYTORCHJOB)
    doc["spec"]["elasticPolicy"] = {"minReplicas": 2, "maxReplicas": 2, "rdzvBackend": "c10d"}
    doc["spec"]["runPolicy"]["schedulingPolicy"]["minAvailable"] = 1
    job, warnings = convert(doc)
    assert job.spec.replicas == 2  # clamped into [min, max]: Master + 1 Worker
    assert job.spec.replica(1).env["PET_NNODES"] == "2:2"
    assert "spec.elasticPolicy: jobsched runs a fixed gang of 2 replicas (min 2, max 2); it does not scale it" in warnings
    assert "spec.elasticPolicy.rdzvBackend: not acted on by jobsched (ignored)" in warnings
    assert any(w.startswith("spec.runPolicy.schedulingPolicy.minAvailable: 1 ignored") for w in warnings)


def test_what_cannot_be_honoured_is_an_error_naming_the_field() -> None:
    doc: dict[str, Any] = copy.deepcopy(PYTORCHJOB)
    doc["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"] = ["other"]
    assert convert(doc)[0].spec.replica(1).argv() == ["other", doc["spec"]["pytorchReplicaSpecs"][
        "Worker"]["template"]["spec"]["containers"][0]["args"][0]]  # each role its own command
    doc = copy.deepcopy(PYTORCHJOB)
    doc["spec"]["pytorchReplicaSpecs"]["Chief"] = {}
    with pytest.raises(SpecError, match=r"^spec.pytorchReplicaSpecs: unknown replica type 'Chief'"):
        convert(doc)
    doc = copy.deepcopy(MXJOB)
    del doc["spec"]["mxReplicaSpecs"]["Scheduler"]
    with pytest.raises(SpecError, match=r"^spec.mxReplicaSpecs.Scheduler: an MXJob needs exactly one"):
        convert(doc)


def test_mxjob_roles_per_rank() -> None:
    job, _ = convert(copy.deepcopy(MXJOB))
    assert job.spec.replicas == 4
    assert [job.spec.replica(i).env["DMLC_ROLE"] for i in range(4)] == ["scheduler", "server", "worker",
                                                                         "worker"]
    env = job.spec.template.env_dict()
    assert env["DMLC_NUM_SERVER"] == "1" and env["DMLC_NUM_WORKER"] == "2"


def _wait(service: Any, name: str) -> Any:
    for _ in range(600):
        st = service.get("default", name)
        if st.phase.is_terminal():
            return st
        time.sleep(0.1)
    raise AssertionError(f"{name}: {st.phase}")


@pytest.mark.slow
def test_kubeflow_jobs_run_with_their_rendezvous_variables(wfh):
    svc = wfh.runtime.service
    svc.submit(copy.deepcopy(PYTORCHJOB))
    svc.submit(copy.deepcopy(MXJOB))
    pt = _wait(svc, "ptj")
    assert pt.phase.value == "Succeeded" and pt.replicas == 3
    lines = sorted(svc.logs("default", "ptj")[0].splitlines())
    assert [ln.split(" ", 2)[2] for ln in lines] == [
        "0 3 127.0.0.1 master", "1 3 127.0.0.1 worker", "2 3 127.0.0.1 worker"]
    mx = _wait(svc, "mxj")
    assert mx.phase.value == "Succeeded"
    lines = sorted(svc.logs("default", "mxj")[0].splitlines())
    assert [ln.split(" ", 2)[2] for ln in lines] == [
        "0 scheduler 1 2 127.0.0.1 True", "1 server 1 2 127.0.0.1 True",
        "2 worker 1 2 127.0.0.1 True", "3 worker 1 2 127.0.0.1 True"]


TFJOB = yaml.safe_load(f"""
apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {{name: tfj}}
spec:
  tfReplicaSpecs:
    PS:
      replicas: 1
      restartPolicy: Never
      template: {{spec: {{containers: [{{name: tensorflow, image: tf, command: [{sys.executable}, -c,
        "import time; time.sleep(600)"]}}]}}}}
    Worker:
      replicas: 2
      restartPolicy: Never
      template: {{spec: {{containers: [{{name: tensorflow, image: tf, command: [{sys.executable}, -c, PROG]}}]}}}}
""".replace("PROG", json.dumps(
    "import json, os; c = json.loads(os.environ['TF_CONFIG']); "
    "print(os.environ['JOBSCHED_ROLE'], c['task']['type'], c['task']['index'], len(c['cluster']['ps']), "
    "len(c['cluster']['worker']))")))


@pytest.mark.slow
def test_tfjob_workers_get_tf_config_and_the_job_succeeds_while_the_ps_serves(wfh):
    """The parameter server never exits: once both workers exited 0 (spec.successRoles), it is stopped
    and the job Succeeded, as the training-operator decides a TFJob's success."""
    svc = wfh.runtime.service
    svc.submit(copy.deepcopy(TFJOB))
    st = _wait(svc, "tfj")
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    assert "SuccessRolesDone" in [e.reason for e in st.events]
    lines = sorted(ln.split(" ", 2)[2] for ln in svc.logs("default", "tfj")[0].splitlines())
    assert lines == ["Worker worker 0 1 2", "Worker worker 1 1 2"]
