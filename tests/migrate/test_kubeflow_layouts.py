"""Kubeflow training-operator examples (v1.7.0, tests/migrate/corpus/kubeflow, Apache-2.0) convert
without rewrites: every replica layout, each role with its own command (or the image's entrypoint),
and the framework's variables per role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jobsched.backends.base import GangLaunch, ReplicaLaunch
from jobsched.backends.kubernetes.pods import build_pod
from jobsched.spec import roles
from jobsched.spec.kubeflow import convert
from jobsched.spec.resources import Resources

CORPUS = Path(__file__).parent / "corpus" / "kubeflow"

# file, kind, [(role, replicas, has its own command)], number of warnings
LAYOUTS = [
    ("mxnet_mxjob_dist_v1.yaml", "MXJob", [("Scheduler", 1, False), ("Server", 1, False), ("Worker", 1, True)], 4),
    ("mxnet_train_byteps_dist_gpu_v1.yaml", "MXJob", [("Scheduler", 1, True), ("Server", 2, True), ("Worker", 2, True)], 4),
    ("mxnet_train_mx_job_dist_gpu_v1.yaml", "MXJob", [("Scheduler", 1, False), ("Server", 1, False), ("Worker", 1, True)], 1),
    ("mxnet_tune_mx_job_tune_gpu_v1.yaml", "MXJob", [("TunerTracker", 1, True), ("TunerServer", 1, True), ("Tuner", 1, True)], 2),
    ("pytorch_elastic_echo_echo.yaml", "PyTorchJob", [("Worker", 2, True)], 4),
    ("pytorch_elastic_imagenet_imagenet.yaml", "PyTorchJob", [("Worker", 2, True)], 5),
    ("pytorch_mnist_v1_pytorch_job_mnist_gloo.yaml", "PyTorchJob", [("Master", 1, False), ("Worker", 1, False)], 0),
    ("pytorch_mnist_v1_pytorch_job_mnist_mpi.yaml", "PyTorchJob", [("Master", 1, False), ("Worker", 1, False)], 0),
    ("pytorch_mnist_v1_pytorch_job_mnist_nccl.yaml", "PyTorchJob", [("Master", 1, False), ("Worker", 1, False)], 0),
    ("pytorch_simple.yaml", "PyTorchJob", [("Master", 1, True), ("Worker", 1, True)], 2),
    ("pytorch_smoke-dist_pytorch_job_sendrecv.yaml", "PyTorchJob", [("Master", 1, False), ("Worker", 3, False)], 0),
    ("tensorflow_dist-mnist_tf_job_mnist.yaml", "TFJob", [("PS", 2, False), ("Worker", 4, False)], 0),
    ("tensorflow_distribution_strategy_estimator-API_distributed_tfjob.yaml", "TFJob", [("Worker", 3, False)], 1),
    ("tensorflow_distribution_strategy_keras-API_multi_worker_tfjob.yaml", "TFJob", [("Worker", 2, False)], 1),
    ("tensorflow_mnist_with_summaries_tf_job_mnist.yaml", "TFJob", [("Worker", 1, True)], 1),
    ("tensorflow_simple.yaml", "TFJob", [("Worker", 2, True)], 0),
]


def test_the_table_covers_the_whole_corpus() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(f for f, *_ in LAYOUTS)


@pytest.mark.parametrize(("file", "kind", "layout", "n_warnings"), LAYOUTS, ids=[f for f, *_ in LAYOUTS])
def test_every_upstream_example_converts(file: str, kind: str, layout: list[tuple[str, int, bool]],
                                         n_warnings: int) -> None:
    doc = yaml.safe_load((CORPUS / file).read_text())
    containers = {role: rs["template"]["spec"]["containers"][0]
                  for role, rs in next(v for k, v in doc["spec"].items() if k.endswith("ReplicaSpecs")).items()}
    job, warnings = convert(doc)
    assert doc["kind"] == kind
    assert [(r.name, r.replicas, bool(r.command)) for r in job.spec.roles] == layout
    assert job.spec.replicas == sum(n for _, n, _ in layout)
    assert len(warnings) == n_warnings, warnings
    rank = 0
    for role in job.spec.roles:  # each replica runs its own role's container, command and args as written
        rt = job.spec.replica(rank)
        c = containers[role.name]
        assert (rt.command, rt.args, rt.image) == (c.get("command", []), c.get("args", []), c["image"])
        rank += role.replicas


def test_mxnet_parameter_server_roles_and_dmlc_variables() -> None:
    job, _ = convert(yaml.safe_load((CORPUS / "mxnet_train_byteps_dist_gpu_v1.yaml").read_text()))
    envs = [roles.expand_refs({**job.spec.replica(r).env, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "9000"})
            for r in range(5)]
    assert [e["DMLC_ROLE"] for e in envs] == ["scheduler", "server", "server", "worker", "worker"]
    assert {(e["DMLC_PS_ROOT_URI"], e["DMLC_PS_ROOT_PORT"], e["DMLC_NUM_SERVER"], e["DMLC_NUM_WORKER"])
            for e in envs} == {("10.0.0.1", "9000", "2", "2")}


def test_tfjob_replicas_get_tf_config_as_the_training_operator_writes_it() -> None:
    job, warnings = convert(yaml.safe_load((CORPUS / "tensorflow_dist-mnist_tf_job_mnist.yaml").read_text()))
    assert job.spec.cluster_env == "TF_CONFIG"
    assert job.spec.success_roles == ["Worker"]  # the parameter servers serve until stopped
    assert warnings == []
    env = roles.role_env(job.spec, 3, lambda r: (f"h{r}", 2222))
    assert env["JOBSCHED_ROLE"] == "Worker" and env["JOBSCHED_ROLE_INDEX"] == "1"
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"ps": ["h0:2222", "h1:2222"], "worker": ["h2:2222", "h3:2222", "h4:2222", "h5:2222"]},
        "task": {"type": "worker", "index": 1}, "environment": "cloud"}


def test_entrypoint_only_replica_runs_the_image_entrypoint_in_its_pod() -> None:
    """build_pod (the Kubernetes backend's pod body): no command, the role's args; TF_CONFIG names the
    gang's pods by their DNS names."""
    job, _ = convert(yaml.safe_load((CORPUS / "tensorflow_dist-mnist_tf_job_mnist.yaml").read_text()))
    rt = job.spec.replica(0)
    env = {**rt.env, **roles.role_env(job.spec, 0, lambda r: ("127.0.0.1", 9000 + r))}
    rep = ReplicaLaunch(0, "n1", rt.argv(), env, Resources.from_quantities({"cpu": "1"}), None,
                        image=rt.image, args_only=not rt.command)
    pod = build_pod(GangLaunch("default/dist-mnist-for-e2e-test", "uid", 0, [rep]), rep, "default", None, None)
    c = pod["spec"]["containers"][0]
    assert "command" not in c and c["image"] == "kubeflow/tf-dist-mnist-test:latest" and c["args"] == []
    tf = json.loads(next(e["value"] for e in c["env"] if e["name"] == "TF_CONFIG"))
    assert tf["cluster"]["ps"][0] == "dist-mnist-for-e2e-test-a0-0.dist-mnist-for-e2e-test-js.default.svc:2222"
    assert tf["task"] == {"type": "ps", "index": 0}


def test_mxjob_replicas_get_mx_config() -> None:
    job, warnings = convert(yaml.safe_load((CORPUS / "mxnet_tune_mx_job_tune_gpu_v1.yaml").read_text()))
    assert job.spec.cluster_env == "MX_CONFIG"
    env = roles.role_env(job.spec, 2, lambda r: (f"h{r}", 9091))
    assert json.loads(env["MX_CONFIG"]) == {
        "cluster": {"tunertracker": [{"url": "h0", "port": 9091}], "tunerserver": [{"url": "h1", "port": 9091}],
                    "tuner": [{"url": "h2", "port": 9091}]},
        "task": {"type": "tuner", "index": 0}, "labels": {"tunertracker": "", "tunerserver": "", "tuner": ""}}
    assert any(w.startswith("spec.mxReplicaSpecs.TunerServer.label: not acted on") for w in warnings)


def test_elastic_policy_becomes_a_fixed_gang_with_a_warning() -> None:
    job, warnings = convert(yaml.safe_load((CORPUS / "pytorch_elastic_echo_echo.yaml").read_text()))
    assert job.spec.replicas == 2
    assert any(w.startswith("spec.elasticPolicy: jobsched runs a fixed gang of 2 replicas") for w in warnings)
