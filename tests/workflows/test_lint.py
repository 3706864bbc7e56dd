"""``jobsched workflow lint``: every error names its field path; ignored Argo fields are warnings."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from jobsched.workflows.lint import LintError, load, parse_yaml

BASE = yaml.safe_load("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: lint-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: echo}
      - {name: b, template: echo, dependencies: [a]}
  - name: echo
    container: {image: alpine, command: [echo], args: [hi]}
""")


def errors_of(mutate: Any, params: dict[str, str] | None = None) -> list[str]:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(LintError) as e:
        load(doc, params)
    return e.value.errors


def tasks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["templates"][0]["dag"]["tasks"]


def test_valid_workflow_lints_clean() -> None:
    wf, warnings = load(copy.deepcopy(BASE))
    assert wf.spec.entrypoint == "main" and warnings == []


def test_cycle_names_the_path_and_the_cycle() -> None:
    errs = errors_of(lambda d: tasks(d)[0].update(dependencies=["b"]))
    assert errs == ["spec.templates[0].dag.tasks[0].dependencies: cycle a -> b -> a"]


def test_cycle_through_depends() -> None:
    def m(d: dict[str, Any]) -> None:
        tasks(d)[0]["depends"] = "b.Succeeded || b.Failed"
    assert errors_of(m) == ["spec.templates[0].dag.tasks[0].depends: cycle a -> b -> a"]


def test_undefined_template() -> None:
    assert errors_of(lambda d: tasks(d)[1].update(template="nope")) == [
        "spec.templates[0].dag.tasks[1].template: template 'nope' is not defined"]


def test_undefined_entrypoint_and_onexit() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["entrypoint"] = "missing"
        d["spec"]["onExit"] = "gone"
    assert errors_of(m) == ["spec.entrypoint: template 'missing' is not defined",
                            "spec.onExit: template 'gone' is not defined"]


def test_missing_entrypoint() -> None:
    assert errors_of(lambda d: d["spec"].pop("entrypoint")) == ["spec.entrypoint: required"]


def test_bad_target() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["templates"][0]["dag"]["target"] = "b zz"
    assert errors_of(m) == ["spec.templates[0].dag.target: task 'zz' is not defined in this DAG"]


def test_depends_and_dependencies_in_one_task() -> None:
    assert errors_of(lambda d: tasks(d)[1].update(depends="a")) == [
        "spec.templates[0].dag.tasks[1]: use either depends or dependencies, not both"]


def test_unknown_dependency_and_bad_depends_result() -> None:
    errs = errors_of(lambda d: tasks(d)[1].update(dependencies=["x"]))
    assert errs == ["spec.templates[0].dag.tasks[1].dependencies: task 'x' is not defined in this DAG"]

    def m(d: dict[str, Any]) -> None:
        tasks(d)[1].pop("dependencies")
        tasks(d)[1]["depends"] = "a.Finished"
    assert errors_of(m)[0].startswith("spec.templates[0].dag.tasks[1].depends: unknown task result 'Finished'")


def test_duplicate_template_names() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["templates"].append(copy.deepcopy(d["spec"]["templates"][1]))
    assert errors_of(m) == ["spec.templates[2].name: duplicate template name 'echo' (also spec.templates[1])"]


def test_several_template_kinds() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["templates"][1]["script"] = {"image": "x", "command": ["sh"], "source": "true"}
    assert errors_of(m) == ["spec.templates[1]: several template kinds (container, script); use exactly one"]


def test_negative_deadline() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["activeDeadlineSeconds"] = -5
        d["spec"]["templates"][1]["activeDeadlineSeconds"] = -1
    assert errors_of(m) == [
        "spec.activeDeadlineSeconds: must not be negative",
        "spec.templates[1].activeDeadlineSeconds: duration must not be negative, got '-1'"]


def test_malformed_yaml_names_line_and_column() -> None:
    with pytest.raises(LintError) as e:
        parse_yaml("apiVersion: v1\nspec:\n  templates: [\n", "wf.yaml")
    assert e.value.errors[0].startswith("wf.yaml:4:1: malformed YAML")


def test_unknown_field_is_an_error_naming_its_path() -> None:
    assert errors_of(lambda d: tasks(d)[0].update(dependncies=["b"])) == [
        "spec.templates[0].dag.tasks[0].dependncies: unknown field"]


def test_real_argo_fields_jobsched_ignores_are_warnings() -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["podGC"] = {"strategy": "OnPodSuccess"}
    doc["spec"]["templates"][1]["outputs"] = {"artifacts": [{"name": "a", "path": "/tmp/a"}]}
    doc["spec"]["templates"][1]["container"]["imagePullPolicy"] = "Always"
    _, warnings = load(doc)
    assert warnings == [
        "spec.templates[1].outputs.artifacts: accepted but not acted on by jobsched (ignored)",
        "spec.templates[1].container.imagePullPolicy: accepted but not acted on by jobsched (ignored)",
        "spec.podGC: accepted but not acted on by jobsched (ignored)"]


def test_unsupported_kinds_and_refs() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["templates"][1] = {"name": "echo", "suspend": {}}
        tasks(d)[0].pop("template")
        tasks(d)[0]["templateRef"] = {"name": "x", "template": "y"}
    assert errors_of(m) == [
        "spec.templates[0].dag.tasks[0].templateRef.name: WorkflowTemplate 'x' not found (put it in "
        "the same file, or submit it first with `jobsched workflow submit`)"]

    def s(d: dict[str, Any]) -> None:
        d["spec"]["templates"][1] = {"name": "echo", "plugin": {"hello": {}}}
    assert errors_of(s) == ["spec.templates[1].plugin: template kind 'plugin' is not supported by jobsched"]

    def http(d: dict[str, Any]) -> None:  # supported: a bad method, url or condition is named
        d["spec"]["templates"][1] = {"name": "echo", "http": {"url": "ftp://x", "method": "FETCH",
                                                              "successCondition": "response.statusCode =="}}
    errors = errors_of(http)
    assert errors[:2] == ["spec.templates[1].http.method: 'FETCH' is not an HTTP method",
                          "spec.templates[1].http.url: 'ftp://x' must start with http:// or https://"]
    assert errors[2].startswith("spec.templates[1].http.successCondition: ") and len(errors) == 3

    def suspend(d: dict[str, Any]) -> None:  # supported: a bad duration is named
        d["spec"]["templates"][1] = {"name": "echo", "suspend": {"duration": "soon"}}
    errors = errors_of(suspend)
    assert len(errors) == 1 and errors[0].startswith("spec.templates[1].suspend.duration: invalid duration 'soon'")


def test_workflow_parameters_need_values_and_respect_enums() -> None:
    def m(d: dict[str, Any]) -> None:
        d["spec"]["arguments"] = {"parameters": [{"name": "lr"}, {"name": "opt", "value": "sgd",
                                                                  "enum": ["sgd", "adam"]}]}
    assert errors_of(m) == ["spec.arguments.parameters[0].value: required for 'lr' (or pass -p lr=...)"]
    assert errors_of(m, {"lr": "1", "opt": "rmsprop"}) == [
        "spec.arguments.parameters[1].value: 'rmsprop' is not one of ['sgd', 'adam']"]
    assert errors_of(m, {"lr": "1", "nope": "x"}) == [
        "arguments: parameter 'nope' is not declared in spec.arguments.parameters"]


def test_container_without_command_lints_with_a_warning() -> None:
    doc = copy.deepcopy(BASE)
    del doc["spec"]["templates"][1]["container"]["command"]
    _, warnings = load(doc)
    assert warnings == ["spec.templates[1].container.command: not set, so the step runs the image's "
                        "entrypoint: on Kubernetes only (the local backend runs commands on the host "
                        "and cannot run an image's entrypoint: set `command`, or run it on Kubernetes)"]


def test_wrong_kind_and_bad_retry_limit() -> None:
    assert errors_of(lambda d: d.update(kind="CronWorkflow"))[0].startswith("apiVersion/kind:")

    def m(d: dict[str, Any]) -> None:
        d["spec"]["templates"][1]["retryStrategy"] = {"limit": "two", "retryPolicy": "Sometimes"}
    errs = errors_of(m)
    assert errs[0].startswith("spec.templates[1].retryStrategy.retryPolicy: Input should be 'Always'")


def test_references_to_undeclared_parameters_tasks_and_steps() -> None:
    def m(d: dict[str, Any]) -> None:
        tasks(d)[1]["arguments"] = {"parameters": [
            {"name": "x", "value": "{{tasks.c.outputs.result}} {{workflow.parameters.lr}}"}]}
        d["spec"]["templates"][1]["container"]["args"] = ["{{inputs.parameters.msg}}"]
    assert errors_of(m) == [
        "spec.templates[0].dag.tasks[1].arguments.parameters[0].value: {{tasks.c.outputs.result}}: "
        "'c' is not a task of this DAG",
        "spec.templates[0].dag.tasks[1].arguments.parameters[0].value: {{workflow.parameters.lr}}: "
        "'lr' is not a workflow parameter (spec.arguments.parameters)",
        "spec.templates[1].container.args[0]: {{inputs.parameters.msg}}: "
        "'msg' is not an input parameter of this template"]
