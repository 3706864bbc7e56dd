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


@pytest.mark.parametrize("value,expected", [("4Gi", 4 * 2**30), ("1.5G", 1_500_000_000), (2**21, 2**21),
                                            ("100Mi", 100 * 2**20), ("1e7", 10**7)])
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
    (lambda m: m["spec"].__setitem__("roles", [{"name": "a", "replicas": 9}]), "spec.roles"),
    (lambda m: m["spec"].__setitem__("successRoles", ["nope"]), "spec.successRoles"),
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


@pytest.mark.parametrize("where", ["requests", "limits"])
@pytest.mark.parametrize("value", [0, "0", "1e-30", "100", 0.5, "1023Ki"])
def test_memory_below_1mi_is_rejected_naming_the_field(where, value):
    m = job()
    m["spec"]["template"]["resources"] = {where: {"memory": value}}
    err = error_of(m)
    assert f"spec.template.resources.{where}.memory: must be at least 1Mi" in err


def test_queue_default_memory():
    assert Queue.make("team").default_memory_bytes() == 2**30
    q = Queue.model_validate({"metadata": {"name": "team"}, "spec": {"defaultMemory": "256Mi"}})
    assert q.default_memory_bytes() == 256 * 2**20
    for bad in (0, "100", "lots"):
        with pytest.raises(ValidationError) as e:
            Queue.model_validate({"metadata": {"name": "team"}, "spec": {"defaultMemory": bad}})
        assert format_validation_error(e.value).startswith("spec.defaultMemory: ")


def test_backoff_defaults_grow_and_are_capped():
    j = TrainingJob.model_validate(job())
    assert [j.spec.backoff.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert j.spec.backoff.delay(50) == 300.0  # maxDuration 5m caps each wait
    b = TrainingJob.model_validate(job(backoff={"duration": "500ms", "factor": 3, "maxDuration": "1m30s"})).spec.backoff
    assert [b.delay(n) for n in (1, 2, 3, 10)] == [0.5, 1.5, 4.5, 90.0]
    assert TrainingJob.model_validate(job(backoff={"duration": 2})).spec.backoff.delay(1) == 2.0


@pytest.mark.parametrize("backoff,path", [
    ({"duration": "1x"}, "spec.backoff.duration: invalid duration '1x'"),
    ({"duration": "-1s"}, "spec.backoff.duration: invalid duration '-1s'"),
    ({"maxDuration": "soon"}, "spec.backoff.maxDuration: invalid duration 'soon'"),
    ({"factor": 0.5}, "spec.backoff.factor"),
    ({"limit": 3}, "spec.backoff.limit: unknown field"),
])
def test_bad_backoff_names_the_field(backoff, path):
    assert path in error_of(job(backoff=backoff))
