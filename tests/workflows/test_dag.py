"""DAG workflows end to end on the local backend: ordering, parameters, outputs, depends logic."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import by_display

pytestmark = pytest.mark.slow

DIAMOND = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: diamond-}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: greeting, value: hello}]
  templates:
  - name: main
    outputs:
      parameters:
      - name: final
        valueFrom: {parameter: "{{tasks.d.outputs.result}}"}
    dag:
      tasks:
      - name: a
        template: emit
        arguments: {parameters: [{name: text, value: "{{workflow.parameters.greeting}}"}]}
      - name: b
        template: emit
        dependencies: [a]
        arguments: {parameters: [{name: text, value: "b-{{tasks.a.outputs.result}}"}]}
      - name: c
        template: write-file
        depends: a
        arguments: {parameters: [{name: v, value: "c"}]}
      - name: d
        template: emit
        depends: "b && c.Succeeded"
        arguments:
          parameters: [{name: text, value: "{{tasks.b.outputs.result}}+{{tasks.c.outputs.parameters.out}}"}]
  - name: emit
    inputs: {parameters: [{name: text}]}
    container: {image: alpine, command: [echo], args: ["{{inputs.parameters.text}}"]}
  - name: write-file
    inputs:
      parameters: [{name: v}, {name: kind, default: small, enum: [small, large]}]
    script:
      image: alpine
      command: [sh]
      source: |
        printf '%s-%s-%s\\n' "{{inputs.parameters.v}}" "{{inputs.parameters.kind}}" "{{workflow.name}}" > /tmp/out.txt
    outputs:
      parameters: [{name: out, valueFrom: {path: /tmp/out.txt}}]
"""


def test_diamond_order_parameters_and_outputs(wfh):
    st = wfh.run(DIAMOND, {"greeting": "hi"})
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    assert n["a"].outputs["result"] == "hi"
    assert n["b"].outputs["result"] == "b-hi"
    assert n["c"].outputs["parameters"] == {"out": f"c-small-{st.name}"}
    assert n["d"].outputs["result"] == f"b-hi+c-small-{st.name}"
    assert st.nodes[st.name].outputs["parameters"] == {"final": f"b-hi+c-small-{st.name}"}
    # b and c start only after a finished; d only after both; b and c run side by side.
    assert n["b"].started_at >= n["a"].finished_at and n["c"].started_at >= n["a"].finished_at
    assert n["d"].started_at >= max(n["b"].finished_at, n["c"].finished_at)
    assert n["b"].started_at < n["c"].finished_at and n["c"].started_at < n["b"].finished_at
    # Each step ran as its own jobsched job, once.
    for t in "abcd":
        assert len(n[t].attempts) == 1
        job = wfh.runtime.service.get("default", n[t].attempts[0].job)
        assert job.phase.value == "Succeeded" and job.labels["jobsched.io/workflow"] == st.name


DEPENDS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: depends-logic}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: fail, template: exit, arguments: {parameters: [{name: code, value: "1"}]}}
      - {name: on-fail, template: ok, depends: fail.Failed}
      - {name: on-success, template: ok, depends: fail.Succeeded}
      - {name: completed, template: ok, depends: "fail.Completed && !fail.Errored"}
      - {name: negated, template: ok, depends: "!fail.Succeeded && (fail.Failed || fail.Skipped)"}
      - {name: skipped, template: ok, when: "1 > 2"}
      - {name: after-skip, template: ok, depends: skipped.Skipped}
      - {name: bare, template: ok, depends: skipped}
      - name: loop
        template: exit
        arguments: {parameters: [{name: code, value: "{{item}}"}]}
        withItems: [0, 1]
      - {name: any, template: ok, depends: loop.AnySucceeded}
      - {name: all, template: ok, depends: loop.AllFailed}
  - name: exit
    inputs: {parameters: [{name: code}]}
    container: {image: alpine, command: [sh, -c, "exit {{inputs.parameters.code}}"]}
  - name: ok
    container: {image: alpine, command: ["true"]}
"""


def test_depends_expressions_and_dag_phase(wfh):
    st = wfh.run(DEPENDS)
    n = by_display(st)
    assert {k: n[k].phase for k in ("fail", "on-fail", "on-success", "completed", "negated", "skipped",
                                     "after-skip", "bare", "loop", "any", "all")} == {
        "fail": "Failed", "on-fail": "Succeeded", "on-success": "Omitted", "completed": "Succeeded",
        "negated": "Succeeded", "skipped": "Skipped", "after-skip": "Succeeded", "bare": "Succeeded",
        "loop": "Failed", "any": "Succeeded", "all": "Omitted"}
    assert n["loop(0:0)"].phase == "Succeeded" and n["loop(1:1)"].phase == "Failed"
    assert n["fail"].outputs["exitCode"] == "1"
    # on-success was omitted because fail failed: that branch failed, so the DAG fails (as in Argo).
    assert st.phase == "Failed"


HANDLED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: handled}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: handled, template: handled-dag}
      - {name: fast, template: fail-fast, continueOn: {failed: true}}
      - {name: slow, template: no-fail-fast, continueOn: {failed: true}}
      - {name: targeted, template: targeted}
  - name: handled-dag
    dag:
      tasks:
      - {name: fail, template: fail}
      - {name: recover, template: ok, depends: fail.Failed}
  - name: fail-fast
    dag:
      tasks:
      - {name: fail, template: fail}
      - {name: first, template: ok}
      - {name: second, template: ok, dependencies: [first]}
      - {name: third, template: ok, dependencies: [second]}
  - name: no-fail-fast
    dag:
      failFast: false
      tasks:
      - {name: fail, template: fail}
      - {name: first, template: ok}
      - {name: second, template: ok, dependencies: [first]}
      - {name: third, template: ok, dependencies: [second]}
  - name: targeted
    dag:
      target: mid
      tasks:
      - {name: start, template: ok}
      - {name: mid, template: ok, dependencies: [start]}
      - {name: end, template: fail, dependencies: [mid]}
  - name: fail
    container: {image: alpine, command: ["false"]}
  - name: ok
    container: {image: alpine, command: ["true"]}
"""


def test_handled_failure_fail_fast_continue_on_and_target(wfh):
    st = wfh.run(HANDLED)
    assert st.phase == "Succeeded", st.message  # the failed steps have continueOn.failed
    nodes = st.nodes
    handled = nodes[f"{st.name}[0].handled"]
    assert handled.phase == "Succeeded"  # a failure acted on by depends: fail.Failed
    fast, slow = nodes[f"{st.name}[0].fast"], nodes[f"{st.name}[0].slow"]
    assert fast.phase == "Failed" and slow.phase == "Failed"
    # As Argo's dag.go: dag.failFast only decides the DAG's phase; the other branch still runs
    # (only a template-level failFast stops new tasks, see test_template_fail_fast_stops_new_tasks).
    assert nodes[f"{fast.name}.third"].phase == "Succeeded"
    assert nodes[f"{slow.name}.third"].phase == "Succeeded"
    assert fast.message == "task 'fail' failed"
    targeted = nodes[f"{st.name}[0].targeted"]
    assert targeted.phase == "Succeeded"
    assert {nodes[c].display_name for c in targeted.children} == {"start", "mid"}  # end never ran


DEPENDS_ON_FAILURE = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: depends-on-failure}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: B, template: fail}
      - {name: C, template: ok}
      - {name: D, template: ok, depends: "B.Failed && C"}
      - {name: E, template: ok, depends: "B"}
      - {name: F, template: ok, depends: "E"}
  - name: fail
    container: {image: alpine, command: ["false"]}
  - name: ok
    container: {image: alpine, command: ["true"]}
"""


def test_depends_that_handles_a_failure_runs_and_omitted_is_reported_omitted(wfh):
    st = wfh.run(DEPENDS_ON_FAILURE)
    n = by_display(st)
    assert n["D"].phase == "Succeeded"  # failFast (the default) does not stop it
    assert n["E"].phase == "Omitted" and n["F"].phase == "Omitted"
    # the target F's branch failed at B: the DAG fails, naming B, and F stays Omitted
    assert st.phase == "Failed"
    assert st.nodes[st.name].message == "task 'B' failed (so 'F' was omitted)"


TEMPLATE_FAIL_FAST = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: template-fail-fast}
spec:
  entrypoint: main
  templates:
  - name: main
    failFast: true
    dag:
      tasks:
      - {name: fail, template: fail}
      - {name: first, template: slow}
      - {name: second, template: ok, dependencies: [first]}
  - name: fail
    container: {image: alpine, command: ["false"]}
  - name: slow
    container: {image: alpine, command: [python3, -c, "import time; time.sleep(3)"]}
  - name: ok
    container: {image: alpine, command: ["true"]}
"""


def test_template_fail_fast_stops_new_tasks(wfh):
    st = wfh.run(TEMPLATE_FAIL_FAST)
    assert st.phase == "Failed"
    names = {x.display_name for x in st.nodes.values()}
    assert "first" in names and "second" not in names
