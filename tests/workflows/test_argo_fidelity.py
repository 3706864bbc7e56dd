"""Argo features that lint accepts now run as Argo runs them (local backend, real processes):
lifecycle hooks, workflow variables, a workflow-level podSpecPatch with parameters, expressions,
substituted timeout messages, WorkflowTemplates through a multi-document submit."""

from __future__ import annotations

import json

import pytest

from jobsched.workflows import documents
from jobsched.workflows.lint import LintError
from tests.workflows.conftest import by_display

FEATURES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: fidelity}
spec:
  entrypoint: main
  arguments: {parameters: [{name: x, value: patched}]}
  podSpecPatch: '{"containers": [{"name": "main", "env": [{"name": "X", "value": "{{workflow.parameters.x}}"}]}]}'
  hooks:
    exit:
      template: report
      arguments: {parameters: [{name: s, value: "{{workflow.status}}"}]}
    started:
      expression: workflow.status == "Running"
      template: sh
      arguments: {parameters: [{name: cmd, value: "echo started {{workflow.name}}"}]}
  templates:
  - name: main
    dag:
      tasks:
      - {name: env, template: sh, arguments: {parameters: [{name: cmd, value: 'echo $X'}]}}
      - name: hooked
        template: sh
        arguments: {parameters: [{name: cmd, value: 'echo hi'}]}
        hooks:
          exit: {template: sh, arguments: {parameters: [{name: cmd, value: 'echo exit {{tasks.hooked.status}}'}]}}
          done:
            expression: tasks.hooked.status == "Succeeded"
            template: sh
            arguments: {parameters: [{name: cmd, value: 'echo done'}]}
      - name: slow
        template: slow
        arguments: {parameters: [{name: t, value: 1s}]}
        continueOn: {failed: true}
      - name: cond
        depends: env
        template: sh
        arguments: {parameters: [{name: cmd, value: "echo {{=tasks.env.outputs.result == 'patched' ? 'yes' : 'no'}}"}]}
  - name: sh
    inputs: {parameters: [{name: cmd}]}
    container: {image: alpine, command: [sh, -c, "{{inputs.parameters.cmd}}"]}
  - name: slow
    inputs: {parameters: [{name: t}]}
    timeout: "{{inputs.parameters.t}}"
    container: {image: alpine, command: [sleep, "30"]}
  - name: report
    inputs: {parameters: [{name: s}]}
    container:
      image: alpine
      command: [python3, -c, "import sys; print(sys.argv[1], sys.argv[2], float(sys.argv[3]) > 0)",
                "{{inputs.parameters.s}}", "{{workflow.failures}}", "{{workflow.duration}}"]
"""


@pytest.mark.slow
def test_hooks_variables_patch_expressions_and_timeouts(wfh):
    st = wfh.run(FEATURES, timeout=180)
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    assert n["env"].outputs["result"] == "patched"  # the workflow-level patch, substituted
    assert n["cond"].outputs["result"] == "yes"  # a ternary in {{=...}}
    assert n["hooked.onExit"].outputs["result"] == "exit Succeeded"
    assert n["hooked.hooks.done"].outputs["result"] == "done"
    assert st.nodes[f"{st.name}.hooks.started"].outputs["result"] == "started fidelity"  # workflow-level
    assert n["slow"].phase == "Failed" and n["slow"].message == "timeout of 1s exceeded"
    out = st.nodes[f"{st.name}.onExit"].outputs["result"]
    status, rest = out.split(" ", 1)
    failures, positive = rest.rsplit(" ", 1)
    assert status == "Succeeded" and positive == "True"
    assert [f["displayName"] for f in json.loads(failures)] == ["slow"]


TEMPLATES = """
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata: {name: shared}
spec:
  templates:
  - name: echo
    inputs: {parameters: [{name: msg}]}
    script: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: pipeline}
spec:
  entrypoint: main
  arguments: {parameters: [{name: msg, value: default}]}
  templates:
  - name: main
    steps:
    - - name: say
        templateRef: {name: shared, template: echo, clusterScope: true}
        arguments: {parameters: [{name: msg, value: "{{workflow.parameters.msg}}"}]}
"""

USES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: from-template-}
spec:
  arguments: {parameters: [{name: msg, value: from the workflow}]}
  workflowTemplateRef: {name: pipeline}
"""


@pytest.mark.slow
def test_workflow_templates_submitted_first_then_referenced(wfh):
    items = wfh.ctl.submit_documents(documents.parse_all(TEMPLATES))
    assert [(i["kind"], i["name"]) for i in items] == [("ClusterWorkflowTemplate", "shared"),
                                                      ("WorkflowTemplate", "pipeline")]
    [item] = wfh.ctl.submit_documents(documents.parse_all(USES))
    st = wfh.ctl.wait("default", item["name"], 120)
    assert st.phase == "Succeeded", st.message
    assert by_display(st)["say"].outputs["result"] == "from the workflow"  # script without source


def test_entrypoint_only_step_is_refused_at_submit_on_the_local_backend(wfh):
    doc = documents.parse_all(TEMPLATES)[0]
    wf = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "ep"},
          "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "nginx"}}]}}
    with pytest.raises(LintError) as e:
        wfh.ctl.submit_documents([doc, wf])
    assert e.value.errors == [
        "spec.templates[0].container.command: not set; the local backend runs commands on the host and "
        "cannot run an image's entrypoint: set `command`, or run it on Kubernetes"]
    assert wfh.ctl.list() == [] and ("shared" not in {n for _, n in wfh.ctl.templates})  # nothing kept


def test_entrypoint_only_step_becomes_a_job_that_runs_the_image_entrypoint(tmp_path):
    """On Kubernetes (runs_entrypoints) such a step is a TrainingJob with no command and the step's
    args, so the pod runs the image's ENTRYPOINT with them, as Argo does."""
    from jobsched.spec.job import TrainingJob
    from jobsched.workflows import lint
    from jobsched.workflows.pods import build_job

    wf, _ = lint.load({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "ep"},
                       "spec": {"entrypoint": "main", "templates": [
                           {"name": "main", "container": {"image": "nginx", "args": ["-g", "daemon off;"]}}]}})
    manifest, _ = build_job(tmpl=wf.spec.templates[0], workflow="ep", namespace="default", node_name="ep",
                            retry=0, step_dir=tmp_path, wf_annotations={}, patches=[], max_retries=0,
                            memory_floor=None, notes=[])
    job = TrainingJob.model_validate(manifest)
    assert job.spec.template.command == [] and job.spec.template.args == ["-g", "daemon off;"]
