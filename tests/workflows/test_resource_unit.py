"""Argo resource templates, the pure parts: conditions as Argo writes them, manifests, jsonPath,
lint naming what is wrong, and the local backend refusing resource steps at submit with a hint."""

from __future__ import annotations

import pytest
import yaml

from jobsched.workflows import resource
from jobsched.workflows.lint import RESOURCE_HINT, LintError, load

JOB = {"metadata": {"name": "j", "labels": {"done": "true"}},
       "status": {"succeeded": 3, "failed": 0, "phase": "Running",
                  "replicaStatuses": {"Worker": {"succeeded": 2}}}}


@pytest.mark.parametrize("cond, want", [
    ("status.succeeded > 2", True),
    ("status.succeeded > 3", False),
    ("status.failed > 0", False),
    ("status.phase in (Failed, Error)", False),
    ("status.phase notin (Failed, Error)", True),
    ("status.replicaStatuses.Worker.succeeded = 2", True),
    ("status.phase == Running, status.succeeded >= 3", True),
    ("status.phase == Running, status.succeeded < 3", False),
    ("metadata.labels.done == true", True),
    ("status.completionTime", False),  # exists
    ("!status.completionTime", True),
    ("status.missing != x", True),
])
def test_conditions_hold_as_argo_reads_them(cond: str, want: bool) -> None:
    assert resource.holds(resource.parse_condition(cond), JOB) is want


@pytest.mark.parametrize("cond", ["status.phase in Failed", "status.x ==", "!status.x == 1", ""])
def test_a_bad_condition_is_refused_naming_it(cond: str) -> None:
    with pytest.raises(resource.ConditionError):
        resource.parse_condition(cond)


def test_json_path_gives_strings_as_they_are_and_the_rest_as_json() -> None:
    assert resource.json_path(JOB, "{.metadata.name}") == "j"
    assert resource.json_path(JOB, "{.status.replicaStatuses}") == '{"Worker":{"succeeded":2}}'
    with pytest.raises(ValueError, match="not in the object"):
        resource.json_path(JOB, "{.spec.nothing}")


def _wf(res: dict) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"entrypoint": "r", "templates": [{"name": "r", "resource": res}]}}


def test_lint_names_a_bad_action_manifest_strategy_and_condition() -> None:
    with pytest.raises(LintError) as e:
        load(_wf({"action": "make", "manifest": "kind: [", "mergeStrategy": "deep", "successCondition": "a in b"}))
    assert e.value.errors[0] == "spec.templates[0].resource.action: 'make' is not one of get, create, apply, " \
                                "delete, replace, patch"
    assert e.value.errors[1].startswith("spec.templates[0].resource.mergeStrategy: 'deep' is not one of")
    assert e.value.errors[2].startswith("spec.templates[0].resource.manifest: not valid YAML")
    assert e.value.errors[3].startswith("spec.templates[0].resource.successCondition: 'a in b': in takes a list")
    _, warnings = load(_wf({"action": "delete", "flags": ["--ignore-not-found", "--wait=false"],
                            "setOwnerReference": True,
                            "manifest": yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})}))
    assert "spec.templates[0].resource.flags: '--wait=false' not acted on by jobsched (ignored; TYPE NAME, " \
           "--selector/-l, --namespace/-n and --ignore-not-found are)" in warnings
    assert "spec.templates[0].resource.setOwnerReference: accepted but not acted on by jobsched (ignored)" in warnings


@pytest.mark.slow
def test_the_local_backend_refuses_a_resource_step_at_submit_with_a_hint(wfh) -> None:
    doc = _wf({"action": "create", "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n"})
    with pytest.raises(LintError) as e:
        wfh.ctl.submit(doc)
    assert e.value.errors == [f"spec.templates[0].resource: {RESOURCE_HINT}"]
    assert wfh.ctl.list() == []


@pytest.mark.slow
def test_a_data_template_lints_as_argo_and_is_refused_at_submit_everywhere(wfh) -> None:
    from jobsched.workflows.lint import DATA_HINT

    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "d"},
           "spec": {"entrypoint": "d", "templates": [{"name": "d", "data": {
               "source": {"artifactPaths": {"name": "b", "s3": {"bucket": "x"}}},
               "transformation": [{"expression": 'filter(data, {# endsWith "main.log"})'}]}}]}}
    load(doc)  # valid Argo
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["templates"][0]["data"]["transformation"] = [{"expression": "filter(data, {#"}]
    with pytest.raises(LintError, match=r"data.transformation\[0\].expression: "):
        load(bad)
    with pytest.raises(LintError) as e:
        wfh.ctl.submit(doc)
    assert e.value.errors == [f"spec.templates[0].data: {DATA_HINT}"]
