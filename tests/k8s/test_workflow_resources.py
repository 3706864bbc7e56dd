"""Argo ``resource`` steps on the Kubernetes backend, against the real test control plane: create with
generateName, wait on successCondition/failureCondition while something else changes the object,
patch, get and delete, the object's name passed on through ``valueFrom.jsonPath``."""

from __future__ import annotations

import time

import pytest
import yaml

from jobsched.workflows.controller import WorkflowController
from tests.k8s.test_backend import crds, label, rt, until  # noqa: F401

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

FLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - name: label
        template: label
        arguments: {parameters: [{name: cm, value: "{{steps.make.outputs.parameters.cm}}"}]}
    - - name: note
        template: note
        arguments: {parameters: [{name: cm, value: "{{steps.make.outputs.parameters.cm}}"}]}
    - - name: check
        template: check
        arguments: {parameters: [{name: cm, value: "{{steps.make.outputs.parameters.cm}}"}]}
    - - {name: remove, template: remove}
      - {name: gone, template: gone}
  - name: make
    resource:
      action: create
      successCondition: data.state == done
      failureCondition: data.state in (failed, broken)
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata:
          generateName: TAG-
          labels: {tag: TAG}
        data: {state: waiting, owner: "{{workflow.name}}"}
    outputs:
      parameters:
      - name: cm
        valueFrom: {jsonPath: '{.metadata.name}'}
  - name: label
    inputs: {parameters: [{name: cm}]}
    resource:
      action: patch
      mergeStrategy: json
      flags: [configmap, "{{inputs.parameters.cm}}"]
      manifest: |
        - {op: add, path: /metadata/labels/patched, value: "yes"}
  - name: note
    inputs: {parameters: [{name: cm}]}
    resource:
      action: patch
      mergeStrategy: merge
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "{{inputs.parameters.cm}}"}
        data: {note: merged}
  - name: check
    inputs: {parameters: [{name: cm}]}
    resource:
      action: get
      successCondition: metadata.labels.patched == yes, data.note == merged, data.owner
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "{{inputs.parameters.cm}}"}
  - name: remove
    resource:
      action: delete
      flags: [configmap, --selector, tag=TAG]
  - name: gone
    resource:
      action: delete
      flags: [--ignore-not-found]
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: TAG-never-made}
"""


def _flow(name: str, tag: str) -> dict:
    return yaml.safe_load(FLOW.replace("NAME", name).replace("TAG", tag))


def _mine(core, tag: str) -> list:
    return core.list_namespaced_config_map("default", label_selector=f"tag={tag}").items


@pytest.fixture
def started(rt):  # noqa: F811
    """The workflow controller over the Kubernetes runtime, and a flow of our own, submitted: its
    ConfigMap exists when this returns (the create step ran)."""
    ctl = WorkflowController.for_runtime(rt, interval=0.05)
    ctl.start()

    def start(name: str) -> tuple[str, object]:
        tag = f"cm{label()}"
        ctl.submit(_flow(name, tag))
        until(lambda: len(_mine(rt.backend.core, tag)) == 1, timeout=30, what="the ConfigMap created")
        return tag, _mine(rt.backend.core, tag)[0]

    yield ctl, start
    ctl.stop()


def test_resource_steps_create_wait_patch_get_and_delete(rt, started):  # noqa: F811
    ctl, start = started
    tag, cm = start("objects")
    core = rt.backend.core
    assert cm.metadata.name.startswith(f"{tag}-") and cm.data["owner"] == "objects"
    time.sleep(1.5)  # it waits on its successCondition while nothing changes
    assert ctl.get("default", "objects").nodes["objects[0].make"].phase == "Running"
    core.patch_namespaced_config_map(cm.metadata.name, "default", {"data": {"state": "done"}})
    st = ctl.wait("default", "objects", 60)
    assert st.phase == "Succeeded", (st.message, {n.display_name: n.message for n in st.nodes.values()})
    assert st.nodes["objects[0].make"].outputs["parameters"] == {"cm": cm.metadata.name}
    assert _mine(core, tag) == []  # labelled, noted, checked, then deleted by its label selector


def test_a_failure_condition_fails_the_step(rt, started):  # noqa: F811
    ctl, start = started
    _, cm = start("breaks")
    rt.backend.core.patch_namespaced_config_map(cm.metadata.name, "default", {"data": {"state": "broken"}})
    st = ctl.wait("default", "breaks", 60)
    assert st.phase == "Failed"
    assert st.nodes["breaks[0].make"].message == "failureCondition 'data.state in (failed, broken)' matched"
    assert "breaks[1].label" not in st.nodes
