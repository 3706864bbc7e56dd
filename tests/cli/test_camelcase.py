"""camelCase JSON on the wire and in `-o json`, as in the manifests; snake_case still read."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import httpx
from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.sdk.client import Client
from jobsched.spec.api import JobStatus


def test_api_and_cli_json_are_camel_case(live: Any) -> None:
    c = Client()
    c.submit({"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "camel"},
              "spec": {"template": {"command": [sys.executable, "-c", "pass"],
                                    "resources": {"requests": {"memory": "32Mi"}}}}})
    st = c.wait("camel", timeout=60)
    raw = httpx.get(f"{os.environ['JOBSCHED_URL']}/v1/jobs/default/camel",
                    headers={"Authorization": f"Bearer {os.environ['JOBSCHED_TOKEN']}"}).json()
    assert {"createdAt", "finishedAt", "attempts", "sizing"} <= set(raw) and "created_at" not in raw
    att = raw["attempts"][0]
    assert {"exitCode", "peakMemoryBytes", "startedAt", "memoryMode"} <= set(att)
    assert att["peak_memory_bytes"] == att["peakMemoryBytes"]  # deprecated, one release
    assert "chosenMemory" in raw["sizing"]
    out = json.loads(CliRunner().invoke(build_app(), ["status", "camel", "-o", "json"]).stdout)
    assert set(out) == set(raw) and out["attempts"][0]["exitCode"] == 0
    assert st.attempts[0].exit_code == 0 and st.created_at == raw["createdAt"]
    q = json.loads(CliRunner().invoke(build_app(), ["queues", "-o", "json"]).stdout)
    assert "defaultMemory" in q[0]


def test_sdk_reads_snake_case_from_an_older_server() -> None:
    old = {"name": "x", "created_at": 5.0, "sizing": {"chosen_memory": 7},
           "attempts": [{"index": 0, "exit_code": 1, "peak_memory_bytes": 9,
                         "replicas": [{"rank": 0, "peak_memory_bytes": 3}]}]}
    st = JobStatus.model_validate(old)
    assert st.created_at == 5.0 and st.sizing.chosen_memory == 7
    a = st.attempts[0]
    assert a.exit_code == 1 and a.peak_memory_bytes == 9 and a.replicas[0].peak_memory_bytes == 3
    assert JobStatus.model_validate(st.model_dump(mode="json")) == st
