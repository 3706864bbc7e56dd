"""``jobsched workflow ...`` and the SDK's WorkflowsAPI against a real server (app + Runtime + routes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.sdk.client import Client
from jobsched.sdk.errors import InvalidSpec, NotFoundError
from jobsched.sdk.workflows import WorkflowsAPI
from jobsched.server.app import create_app
from jobsched.server.auth import load_or_create_token
from jobsched.server.runtime import Runtime
from jobsched.server.workflow_routes import make_router
from tests.api.live import serve_in_thread

pytestmark = pytest.mark.slow

PIPELINE = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: pipeline-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: epochs, value: "1"}]}
  templates:
  - name: main
    steps:
    - - {name: prep, template: say, arguments: {parameters: [{name: m, value: "prep"}]}}
    - - {name: train, template: say, arguments: {parameters: [{name: m, value: "train {{workflow.parameters.epochs}}"}]}}
  - name: say
    inputs: {parameters: [{name: m}]}
    outputs: {artifacts: [{name: model, path: /tmp/model}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.m}}"]}
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    home = tmp_path / "home"
    token = load_or_create_token(home)
    rt = Runtime(home)
    rt.start()
    router = make_router(rt)
    try:
        with serve_in_thread(create_app(rt.service, rt.metrics, token, [router])) as url:
            monkeypatch.setenv("JOBSCHED_URL", url)
            monkeypatch.setenv("JOBSCHED_TOKEN", token)
            monkeypatch.setenv("JOBSCHED_HOME", str(home))
            yield rt
    finally:
        router.workflow_controller.stop()  # type: ignore[attr-defined]
        rt.stop()


def cli(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "250"}).invoke(build_app(), ["workflow", *args])


def test_cli_lint_needs_no_server(tmp_path: Path) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(PIPELINE)
    r = cli("lint", str(f))
    assert r.exit_code == 0 and f"{f}: ok" in r.stdout
    assert "spec.templates[1].outputs.artifacts: accepted but not acted on" in r.stderr
    f.write_text(PIPELINE.replace("template: say, arguments: {parameters: [{name: m, value: \"prep\"", "template: sya, arguments: {parameters: [{name: m, value: \"prep\""))
    r = cli("lint", str(f))
    assert r.exit_code == 2
    assert f"{f}: spec.templates[0].steps[0][0].template: template 'sya' is not defined" in r.stderr
    r = cli("lint", str(f), "-p", "oops")
    assert r.exit_code == 2 and "--parameter: expected NAME=VALUE" in r.stderr


def test_cli_submit_wait_status_list_logs(server: Runtime, tmp_path: Path) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(PIPELINE)
    r = cli("submit", str(f), "-p", "epochs=5", "--wait", "-o", "json")
    assert r.exit_code == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["phase"] == "Succeeded" and st["parameters"] == {"epochs": "5"}
    name = st["name"]
    assert name.startswith("pipeline-")
    train = next(n for n in st["nodes"] if n["displayName"] == "train")
    assert train["outputs"]["result"] == "train 5" and train["template"] == "say"
    assert train["attempts"] == 1 and train["startedAt"] and train["finishedAt"]
    r = cli("status", name)
    assert r.exit_code == 0 and "Succeeded" in r.stdout and "result=train 5" in r.stdout
    assert json.loads(cli("status", name, "-o", "json").stdout)["nodes"] == st["nodes"]
    r = cli("list", "-o", "json")
    assert [w["name"] for w in json.loads(r.stdout)] == [name]
    r = cli("logs", name)
    assert r.stdout.splitlines() == ["prep: prep", "train: train 5"]
    # bad input: exit 2, nothing run
    before = len(server.service.list())
    r = cli("submit", str(f), "-p", "nope=1")
    assert r.exit_code == 2 and "parameter 'nope' is not declared" in r.stderr
    assert len(server.service.list()) == before
    assert cli("status", "missing").exit_code == 2


def test_sdk_workflows(server: Runtime) -> None:
    api = WorkflowsAPI(Client())
    doc = __import__("yaml").safe_load(PIPELINE.replace("generateName: pipeline-", "name: sdk-wf"))
    st = api.submit(doc, {"epochs": "2"})
    assert st["name"] == "sdk-wf"
    final = api.wait("sdk-wf", timeout=60, poll=0.1)
    assert final["phase"] == "Succeeded"
    assert "train: train 2" in api.logs("sdk-wf")
    assert [w["name"] for w in api.list()] == ["sdk-wf"]
    with pytest.raises(NotFoundError):
        api.get("nope")
    bad = dict(doc, metadata={"name": "bad"})
    bad["spec"] = dict(doc["spec"], activeDeadlineSeconds=-1)
    with pytest.raises(InvalidSpec, match="spec.activeDeadlineSeconds: must not be negative"):
        api.submit(bad)
    with pytest.raises(Exception, match="already exists"):
        api.submit(doc)
    long = dict(doc, metadata={"name": "to-cancel"})
    long["spec"] = dict(doc["spec"], templates=[
        {"name": "main", "container": {"image": "alpine", "command": ["sleep", "60"]}}])
    api.submit(long)
    st = api.cancel("to-cancel")
    assert st["phase"] == "Failed" and st["message"] == "Workflow terminated by user"


LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.m}}"]}
"""
USES_LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: hi, templateRef: {name: lib, template: say}, arguments: {parameters: [{name: m, value: hello}]}}
"""


def test_cli_multi_document_files_and_stored_templates(server: Runtime, tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(LIBRARY + "---\n" + USES_LIBRARY.replace("NAME", "first"))
    r = cli("lint", str(both))
    assert r.exit_code == 0, r.stderr
    r = cli("submit", str(both), "--wait")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == ["WorkflowTemplate lib created", "Workflow default/first submitted (Succeeded)"]
    later = tmp_path / "later.yaml"  # only the workflow: the server has the template now
    later.write_text(USES_LIBRARY.replace("NAME", "second"))
    assert cli("lint", str(later)).exit_code == 2  # offline lint, like `argo lint --offline`, needs it
    r = cli("submit", str(later), "--wait", "-o", "json")
    assert r.exit_code == 0, r.stderr
    st = json.loads(r.stdout)
    assert next(n for n in st["nodes"] if n["displayName"] == "hi")["outputs"]["result"] == "hello"
    bad = tmp_path / "bad.yaml"
    bad.write_text(USES_LIBRARY.replace("NAME", "third") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    r = cli("submit", str(bad))
    assert r.exit_code == 2
    assert "document 2 (ConfigMap 'c'): apiVersion/kind: expected argoproj.io/v1alpha1" in r.stderr
    assert "Traceback" not in r.stderr
    assert [w["name"] for w in json.loads(cli("list", "-o", "json").stdout)] == ["first", "second"]


APPROVAL = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: build, template: say, arguments: {parameters: [{name: m, value: built}]}}
    - - {name: approve, template: approve}
    - - {name: wait, template: delay}
    - - {name: release, template: say, arguments: {parameters: [{name: m, value: "{{steps.approve.outputs.parameters.version}} {{steps.approve.outputs.parameters.channel}}"}]}}
  - name: approve
    suspend: {}
    outputs:
      parameters:
      - {name: version, valueFrom: {supplied: {}}}
      - {name: channel, valueFrom: {supplied: {}, default: stable}}
  - name: delay
    suspend: {duration: "1"}
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.m}}"]}
"""


def _suspended(api: WorkflowsAPI, name: str, node: str) -> dict[str, Any]:
    deadline = __import__("time").monotonic() + 60
    while True:
        st = api.get(name)
        phases = {n["displayName"]: n["phase"] for n in st["nodes"]}
        if phases.get(node) == "Running":
            return st
        assert __import__("time").monotonic() < deadline, phases
        __import__("time").sleep(0.1)


def test_a_suspended_step_waits_for_resume_and_takes_the_supplied_outputs(server: Runtime, tmp_path: Path) -> None:
    api = WorkflowsAPI(Client())
    api.submit(__import__("yaml").safe_load(APPROVAL.replace("NAME", "approval")))
    st = _suspended(api, "approval", "approve")
    assert st["phase"] == "Running"  # waiting for a person, as Argo's workflow does
    r = cli("resume", "approval", "--node", "nope")
    assert r.exit_code != 0 and "has no suspended node named 'nope' to resume" in r.output
    r = cli("resume", "approval", "-p", "version=v2")
    assert r.exit_code == 0, r.output
    final = api.wait("approval", timeout=60, poll=0.1)
    assert final["phase"] == "Succeeded", final.get("message")
    nodes = {n["displayName"]: n for n in final["nodes"]}
    assert nodes["approve"]["outputs"]["parameters"] == {"version": "v2", "channel": "stable"}
    assert nodes["wait"]["finishedAt"] - nodes["wait"]["startedAt"] >= 1.0  # the 1 s duration passed
    assert "release: v2 stable" in api.logs("approval")
    with pytest.raises(Exception, match="has ended"):  # 409: nothing left to resume
        api.resume("approval")


def test_resuming_without_a_supplied_output_fails_the_step(server: Runtime) -> None:
    api = WorkflowsAPI(Client())
    api.submit(__import__("yaml").safe_load(APPROVAL.replace("NAME", "no-version")))
    _suspended(api, "no-version", "approve")
    api.resume("no-version", node="approve")
    final = api.wait("no-version", timeout=60, poll=0.1)
    nodes = {n["displayName"]: n for n in final["nodes"]}
    assert final["phase"] == "Failed"
    assert nodes["approve"]["message"] == ("outputs.parameters.version: not supplied at resume and no "
                                           "valueFrom.default")
    assert "release" not in nodes
