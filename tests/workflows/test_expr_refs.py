"""The expression language, WorkflowTemplate references and multi-document lint (pure)."""

from __future__ import annotations

import pytest

from jobsched.workflows import documents, expr
from jobsched.workflows.lint import LintError, load

SCOPE = {"a": "3", "inputs.parameters.should-print": "true", "steps.flip-coin.outputs.result": "heads",
         "workflow.parameters.json": '[{"value": "true"}, {"value": "x"}]'}


@pytest.mark.parametrize("text, value", [
    ('a > 2 ? "big" : "small"', "big"),
    ('a > 5 ? "big" : a > 2 ? "mid" : "small"', "mid"),
    ("jsonpath(workflow.parameters.json, '$[0].value') == 'true'", True),
    ("jsonpath(workflow.parameters.json, '$[*].value')", ["true", "x"]),
    ('inputs.parameters["should-print"] == "true"', True),
    ("steps['flip-coin'].outputs.result", "heads"),
    ('sprig.trim("  x ") + sprig.upper("y")', "xY"),
    ("asInt(a) + 1", 4), ("asFloat(a) / 2", 1.5),
    ("sprig.toJson([1, 2])", "[1,2]"), ("toJson({'k': 1, a: [2]}) ", '{"a":[2],"k":1}'),
    ("toJson(filter([1, 3], {# > 1}))", "[3]"), ("map([[1, 2]], {#[1]})[0]", 2),
    ("all([2, 4], {# % 2 == 0})", True), ("sprig.date('2006-01-02', '2026-11-27T08:00:00Z')", "2026-11-27"),
    ("a == 3 ? 1 : undefined.thing", 1),  # the branch not taken is not evaluated
    ("false && undefined.thing", False), ("2 in [1, 2]", True),
])
def test_expressions(text: str, value: object) -> None:
    assert expr.evaluate(text, SCOPE.__getitem__) == value
    expr.check(text)  # what evaluates also lints


def test_check_names_unknown_functions_and_bad_syntax() -> None:
    with pytest.raises(expr.ExprError, match="unknown function 'sprig.nope'"):
        expr.check("sprig.nope(1)")
    with pytest.raises(expr.ExprError):
        expr.check("a ? b")


def wf(templates: list[dict], **spec: object) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "t-"},
            "spec": {"entrypoint": "main", "templates": templates, **spec}}


ECHO = {"name": "echo", "inputs": {"parameters": [{"name": "msg"}]},
        "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.msg}}"]}}


def test_lint_parses_expressions_as_the_engine_does() -> None:
    bad = dict(ECHO, container={"image": "a", "command": ["echo", "{{=sprig.nope(inputs.parameters.msg)}}"]})
    with pytest.raises(LintError) as e:
        load(wf([{"name": "main", "steps": [[{"name": "s", "template": "echo",
                                               "arguments": {"parameters": [{"name": "msg", "value": "x"}]}}]]},
                 bad]))
    assert e.value.errors == ["spec.templates[1].container.command[1]: "
                              "{{=sprig.nope(inputs.parameters.msg)}}: unknown function 'sprig.nope'"]
    retry = dict(ECHO, retryStrategy={"limit": "3",
                                      "expression": "asInt(lastRetry.exitCode) > 1 && {{inputs.parameters.msg}} == true"})
    load(wf([{"name": "main", "steps": [[{"name": "s", "template": "echo",
                                          "arguments": {"parameters": [{"name": "msg", "value": "x"}]}}]]}, retry]))


LIBRARY_FILE = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: hello
    inputs: {parameters: [{name: msg}]}
    steps: [[{name: say, template: echo, arguments: {parameters: [{name: msg, value: "{{inputs.parameters.msg}}"}]}}]]
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: uses-lib-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        templateRef: {name: lib, template: hello}
        arguments: {parameters: [{name: msg, value: hi}]}
"""


def test_multi_document_file_resolves_template_refs() -> None:
    linted = documents.lint_all(documents.parse_all(LIBRARY_FILE))
    assert [(x.kind, x.name) for x in linted] == [("WorkflowTemplate", "lib"), ("Workflow", "uses-lib-")]
    workflow = linted[1].workflow
    assert workflow is not None
    assert sorted(t.name for t in workflow.spec.templates) == ["lib/echo", "lib/hello", "main"]


def test_missing_template_ref_and_wrong_kind_name_the_document() -> None:
    docs = documents.parse_all(LIBRARY_FILE.replace("template: hello", "template: nope")
                               + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(LintError) as e:
        documents.lint_all(docs)
    assert e.value.errors == [
        "document 2 (Workflow 'uses-lib-'): spec.templates[0].dag.tasks[0].templateRef.template: "
        "template 'nope' is not defined in WorkflowTemplate 'lib'",
        "document 3 (ConfigMap 'x'): apiVersion/kind: expected argoproj.io/v1alpha1 and one of Workflow, "
        "WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow, got 'v1' 'ConfigMap'"]


def test_cron_workflow_lint_names_the_schedule_field() -> None:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "c"},
           "spec": {"schedule": "61 * * * *", "timezone": "Mars/Olympus",
                    "workflowSpec": {"entrypoint": "main", "templates": [ECHO | {"name": "main"}]}}}
    with pytest.raises(LintError) as e:
        documents.lint_all([doc])
    assert e.value.errors == ["spec.schedule: minute: '61' is outside 0-59",
                              "spec.timezone: unknown time zone 'Mars/Olympus'"]
