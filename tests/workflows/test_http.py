"""Argo ``http`` templates against a real HTTP server on localhost: the request as written, the body
as ``outputs.result``, ``successCondition`` over status, body and headers, failures that say why."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import yaml

from tests.workflows.conftest import by_display

pytestmark = pytest.mark.slow


class _Handler(http.server.BaseHTTPRequestHandler):
    def _reply(self, code: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/ok":
            self._reply(200, "hello from the server", {"X-Test": "yes"})
        elif self.path == "/created":
            self._reply(201, "made")
        else:
            self._reply(500, "broken")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self._reply(200, f"{self.command} {self.headers.get('X-Token')} {body}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


CALLS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: calls}
spec:
  entrypoint: main
  arguments: {parameters: [{name: base, value: BASE}]}
  templates:
  - name: main
    steps:
    - - name: get
        template: get
      - name: created
        template: created
      - name: post
        template: post
    - - name: echo
        template: echo
        arguments: {parameters: [{name: m, value: "{{steps.get.outputs.result}} / {{steps.post.outputs.result}}"}]}
  - name: get
    http:
      url: "{{workflow.parameters.base}}/ok"
      successCondition: 'response.body contains "hello" && response.headers["X-Test"][0] == "yes"'
  - name: created
    http:
      url: "{{workflow.parameters.base}}/created"
      timeoutSeconds: 5
      successCondition: "response.statusCode == 201"
  - name: post
    http:
      url: "{{workflow.parameters.base}}/echo"
      method: POST
      headers: [{name: X-Token, value: abc}]
      body: '{"n": 1}'
  - name: echo
    inputs: {parameters: [{name: m}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.m}}"]}
"""


def test_http_steps_send_the_request_and_pass_the_body_on(wfh, server):
    st = wfh.run(CALLS.replace("BASE", server), timeout=60)
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    assert n["get"].type == "HTTP" and n["get"].outputs["result"] == "hello from the server"
    assert n["created"].phase == "Succeeded" and n["created"].outputs["result"] == "made"
    assert n["post"].outputs["result"] == 'POST abc {"n": 1}'
    assert n["echo"].outputs["result"].strip() == 'hello from the server / POST abc {"n": 1}'


def test_a_failing_status_or_condition_fails_the_step_saying_why(wfh, server):
    doc = yaml.safe_load(CALLS.replace("BASE", server))
    doc["metadata"]["name"] = "fails"
    doc["spec"]["templates"][0]["steps"] = [[{"name": "broken", "template": "broken", "continueOn": {"failed": True}},
                                             {"name": "wrong", "template": "wrong", "continueOn": {"failed": True}},
                                             {"name": "nobody", "template": "nobody", "continueOn": {"failed": True}}]]
    doc["spec"]["templates"] += [
        {"name": "broken", "http": {"url": f"{server}/nope"}},
        {"name": "wrong", "http": {"url": f"{server}/ok", "successCondition": "response.statusCode == 201"}},
        {"name": "nobody", "http": {"url": "http://127.0.0.1:9/", "timeoutSeconds": 2}}]
    st = wfh.run(doc, timeout=60)
    n = by_display(st)
    assert (n["broken"].phase, n["broken"].message) == ("Failed", "HTTP status 500")
    assert n["broken"].outputs["result"] == "broken"
    assert n["wrong"].message == "successCondition 'response.statusCode == 201' is false (HTTP status 200)"
    assert n["nobody"].phase == "Failed" and n["nobody"].message.startswith("GET http://127.0.0.1:9/: ConnectError")


def test_http_steps_can_be_turned_off_on_the_server(wfh, server, monkeypatch):
    monkeypatch.setenv("JOBSCHED_WORKFLOW_HTTP", "0")
    doc = yaml.safe_load(CALLS.replace("BASE", server))
    doc["metadata"]["name"] = "off"
    st = wfh.run(doc, timeout=60)
    assert st.phase in ("Error", "Failed")
    assert by_display(st)["get"].message == "http steps are turned off on this server (JOBSCHED_WORKFLOW_HTTP=0)"
