"""JobSet (jobset.x-k8s.io, its v0.5.2 examples: tests/migrate/corpus/jobset, Apache-2.0) → one gang:
each replicated job a role of replicas × parallelism, successPolicy → successRoles, maxRestarts →
maxRetries, the Kueue label → queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobsched.spec.errors import SpecError
from jobsched.spec.sources import to_training_job

CORPUS = Path(__file__).parent / "corpus" / "jobset"

# file, [(role, replicas)], successRoles, maxRetries
TABLE = [
    ("pytorch_cnn-mnist_mnist.yaml", [("workers", 4)], [], 0),
    ("pytorch_resnet-cifar10_resnet.yaml", [("workers", 4)], [], 0),
    ("simple_exclusive-placement.yaml", [("workers", 9)], [], 3),
    ("simple_max-restarts.yaml", [("leader", 2), ("workers", 2)], [], 3),
    ("simple_paralleljobs.yaml", [("workers", 4), ("driver", 1)], [], 0),
    ("simple_success-policy.yaml", [("leader", 1), ("workers", 2)], ["workers"], 0),
    ("simple_ttl-after-finished.yaml", [("workers", 4)], [], 0),
    ("startup-policy_startup-driver-ready.yaml", [("driver", 1), ("workers", 4)], [], 0),
    ("tensorflow_mnist.yaml", [("tensorflow", 2)], [], 0),
]


def test_the_table_covers_the_corpus() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(t[0] for t in TABLE)


@pytest.mark.parametrize(("file", "layout", "success", "retries"), TABLE, ids=[t[0] for t in TABLE])
def test_jobset_examples_convert(file: str, layout: list[tuple[str, int]], success: list[str], retries: int) -> None:
    doc = yaml.safe_load((CORPUS / file).read_text())
    job, _ = to_training_job(doc)
    assert [(r.name, r.replicas) for r in job.spec.roles] == layout
    assert (job.spec.success_roles, job.spec.max_retries) == (success, retries)
    for i, rj in enumerate(doc["spec"]["replicatedJobs"]):  # each replicated job's own container
        rank = sum(n for _, n in layout[:i])
        c = rj["template"]["spec"]["template"]["spec"]["containers"][0]
        assert job.spec.replica(rank).argv() == [*c.get("command", []), *c.get("args", [])]


def test_jobset_queue_label_and_refusals() -> None:
    doc = yaml.safe_load((CORPUS / "simple_success-policy.yaml").read_text())
    doc["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team-a"}
    doc["spec"]["suspend"] = True
    assert to_training_job(doc)[0].spec.queue == "team-a"
    doc["spec"]["replicatedJobs"][0]["template"]["spec"].update(parallelism=1, completions=3)
    with pytest.raises(SpecError, match=r"^spec.replicatedJobs\[0\].template.spec.completions: 3 completions"):
        to_training_job(doc)
