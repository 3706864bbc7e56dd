"""Argo ``containerSet`` templates on the local backend: the containers run as processes of one
replica in dependency order (independent ones side by side), ``main``'s output is the result, a
failure stops the containers that depend on it, and lint names bad sets."""

from __future__ import annotations

import sys

import pytest

from jobsched.workflows.lint import CONTAINER_SET_HINT, ENTRYPOINT_HINT, LintError, load
from tests.workflows.conftest import by_display

PY = sys.executable


def _wf(name: str, containers: list[dict], extra: list[dict] | None = None, entry: str = "set") -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": entry,
                     "templates": [{"name": "set", "containerSet": {"containers": containers}}, *(extra or [])]}}


def _c(name: str, code: str, deps: tuple[str, ...] = ()) -> dict:
    return {"name": name, "image": "python:3", "command": [PY, "-c", code], "dependencies": list(deps)}


@pytest.mark.slow
def test_a_graph_runs_in_dependency_order_and_main_is_the_result(wfh, tmp_path):
    mark = tmp_path / "order"
    log = f"open({str(mark)!r}, 'a').write"
    graph = [_c("a", f"{log}('a')"),
             _c("b", f"import time; time.sleep(0.3); {log}('b')", ("a",)),
             _c("c", f"{log}('c')", ("a",)),
             _c("main", f"{log}('d'); print('hi from main')", ("b", "c"))]
    verify = {"name": "verify", "inputs": {"parameters": [{"name": "x"}]},
              "script": {"image": "python:3", "command": [PY], "source": 'assert "{{inputs.parameters.x}}" == "hi from main"'}}
    main = {"name": "main", "dag": {"tasks": [
        {"name": "a", "template": "set"},
        {"name": "b", "template": "verify", "dependencies": ["a"],
         "arguments": {"parameters": [{"name": "x", "value": "{{tasks.a.outputs.result}}"}]}}]}}
    st = wfh.run(_wf("graph", graph, [verify, main], entry="main"), timeout=90)
    assert st.phase == "Succeeded", st.message
    order = mark.read_text()
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]
    assert by_display(st)["a"].outputs["result"] == "hi from main"
    logs = wfh.ctl.logs("default", "graph")
    assert "a: [main] hi from main" in logs  # every container's output, prefixed, in the step's log


@pytest.mark.slow
def test_a_failed_container_stops_its_dependents_and_fails_the_step(wfh, tmp_path):
    mark = tmp_path / "ran"
    st = wfh.run(_wf("fails", [_c("a", "import sys; sys.exit(3)"),
                               _c("b", f"open({str(mark)!r}, 'w').write('b')", ("a",))]), timeout=90)
    assert st.phase == "Failed"
    assert by_display(st)["fails"].outputs["exitCode"] == "3"
    assert not mark.exists()


def test_lint_names_duplicate_names_missing_dependencies_and_cycles():
    bad = _wf("bad", [_c("a", "", ("b",)), _c("b", "", ("a",)), _c("d", ""), _c("d", ""), _c("c", "", ("z",))])
    with pytest.raises(LintError) as e:
        load(bad)
    assert e.value.errors == [
        "spec.templates[0].containerSet.containers[3].name: 'd' is used twice",
        "spec.templates[0].containerSet.containers[4].dependencies: no container named 'z'",
        "spec.templates[0].containerSet.containers: dependency cycle a -> b -> a"]


@pytest.mark.slow
def test_containers_without_command_are_refused_locally_and_sets_on_image_backends(wfh):
    doc = _wf("noc", [{"name": "main", "image": "argoproj/argosay:v2"}])
    with pytest.raises(LintError) as e:
        wfh.ctl.submit(doc)
    assert e.value.errors == [f"spec.templates[0].containerSet.containers[0].command: not set; {ENTRYPOINT_HINT}"]
    wfh.ctl.runner.runs_entrypoints = True  # as the Kubernetes backend's runner says
    with pytest.raises(LintError) as e:
        wfh.ctl.submit(_wf("k8s", [_c("main", "pass")]))
    assert e.value.errors == [f"spec.templates[0].containerSet: {CONTAINER_SET_HINT}"]
