"""Manifest validation: every bad input names its field path."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobsched.spec import Queue, TrainingJob
from jobsched.spec.errors import format_validation_error
from jobsched.spec.resources import Resources


def job(**spec):
    base = {"template": {"command": ["python", "train.py"],
                         "resources": {"requests": {"cpu": "500m", "memory": "1.5G"}}}}
    base.update(spec)
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "a"}, "spec": base}


def error_of(manifest) -> str:
    with pytest.raises(ValidationError) as e:
        TrainingJob.model_validate(manifest)
    return format_validation_error(e.value)


def test_valid_job_parses_quantities_exactly():
    j = TrainingJob.model_validate(job(replicas=2))
    assert j.requests() == Resources(500, 1_500_000_000, 0, 0)
    assert j.metadata.namespace == "default"
    assert j.spec.queue == "default"


@pytest.mark.parametrize("value,expected", [("4Gi", 4 * 2**30), ("1.5G", 1_500_000_000), (2, 2),
                                            ("100Mi", 100 * 2**20), ("1e3", 1000)])
def test_memory_quantities(value, expected):
    m = job()
    m["spec"]["template"]["resources"]["requests"]["memory"] = value
    assert TrainingJob.model_validate(m).requests().memory == expected


def test_cpu_millicores_rounded_up():
    m = job()
    m["spec"]["template"]["resources"]["requests"]["cpu"] = "0.0005"
    assert TrainingJob.model_validate(m).requests().cpu_milli == 1


@pytest.mark.parametrize("mutate,path", [
    (lambda m: m["spec"].__setitem__("replicas", 0), "spec.replicas"),
    (lambda m: m["spec"].__setitem__("bogus", 1), "spec.bogus: unknown field"),
    (lambda m: m["spec"]["template"]["resources"]["requests"].__setitem__("memory", "-1Gi"),
     "spec.template.resources.requests.memory"),
    (lambda m: m["spec"]["template"]["resources"]["requests"].__setitem__("memory", "lots"),
     "spec.template.resources.requests.memory"),
    (lambda m: m["spec"]["template"]["resources"]["requests"].__setitem__("nvidia.com/gpu", "0.5"),
     "spec.template.resources"),
    (lambda m: m["metadata"].__setitem__("name", "Bad_Name"), "metadata.name"),
    (lambda m: m["spec"]["template"].__setitem__("command", []), "spec.template.command"),
    (lambda m: m.__setitem__("kind", "Job"), "kind"),
    (lambda m: m["spec"].__setitem__("memoryPolicy", "Sometimes"), "spec.memoryPolicy"),
])
def test_bad_input_names_the_field(mutate, path):
    m = job()
    mutate(m)
    assert path in error_of(m)


def test_request_above_limit_is_an_error():
    m = job()
    m["spec"]["template"]["resources"]["limits"] = {"memory": "1G"}
    assert "must not exceed the limit" in error_of(m)


def test_env_accepts_mapping_and_list():
    m = job()
    m["spec"]["template"]["env"] = {"A": 1}
    assert TrainingJob.model_validate(m).spec.template.env_dict() == {"A": "1"}
    m["spec"]["template"]["env"] = [{"name": "B", "value": "x"}]
    assert TrainingJob.model_validate(m).spec.template.env_dict() == {"B": "x"}


def test_queue_quota():
    q = Queue.model_validate({"metadata": {"name": "team"}, "spec": {"quota": {"nvidia.com/gpu": 8, "memory": "64Gi"}}})
    assert q.quota_limits() == (None, 64 * 2**30, 8)
    with pytest.raises(ValidationError):
        Queue.model_validate({"metadata": {"name": "team"}, "spec": {"quota": {"disk": 1}}})


def test_status_enum_terminal():
    from jobsched.spec import JobPhase

    assert JobPhase.SUCCEEDED.is_terminal() and not JobPhase.RUNNING.is_terminal()
