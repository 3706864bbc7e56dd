"""`jobsched nodes` and `jobsched status` for GPU nodes: a real server on virtual GPU nodes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.server.app import create_app
from jobsched.server.auth import load_or_create_token
from jobsched.server.runtime import Runtime
from tests.api.live import serve_in_thread

NODES = [{"name": "l4-0", "cpu": 4, "memory": "4Gi", "gpus": 1, "gpuModel": "L4", "gpuMemory": "24Gi"},
         {"name": "cpu-0", "cpu": 2, "memory": "2Gi"}]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "200"})


@pytest.fixture
def gpu_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    token = load_or_create_token(home)
    rt = Runtime(home, backend_options={"nodes_config": NODES})
    rt.start()
    try:
        with serve_in_thread(create_app(rt.service, rt.metrics, token)) as url:
            monkeypatch.setenv("JOBSCHED_URL", url)
            monkeypatch.setenv("JOBSCHED_TOKEN", token)
            yield rt
    finally:
        for j in rt.service.list():
            rt.service.cancel(j.namespace, j.name)
        rt.stop()


def share_job(name: str) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"gpuSharing": "Auto", "template": {"command": SLEEPER, "resources": {"requests": {
                "cpu": "500m", "memory": "128Mi", "nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "6Gi"}}}}}


def test_nodes_show_gpu_model_and_memory_and_shares_add_up(gpu_server, tmp_path):
    for name in ("share-a", "share-b"):
        gpu_server.service.submit(share_job(name))
    deadline = time.monotonic() + 30
    while any(gpu_server.service.get("default", n).phase.value != "Running" for n in ("share-a", "share-b")):
        assert time.monotonic() < deadline, "shares not running"
        time.sleep(0.1)
    r = cli("nodes")
    assert r.exit_code == 0, r.output
    row = next(ln for ln in r.output.splitlines() if ln.startswith("l4-0"))
    assert "L4 24Gi" in row and "nvidia.com/gpu=0.5" in row  # two shares of 250/1000 on one GPU
    nodes = {n["name"]: n for n in json.loads(cli("nodes", "-o", "json").output)}
    assert nodes["l4-0"]["gpuModel"] == "L4" and nodes["l4-0"]["gpuMemory"] == 24 * 2**30
    assert nodes["cpu-0"]["gpuModel"] is None
    st = json.loads(cli("status", "share-a", "-o", "json").output)
    req = st["attempts"][0]["resources"]["requests"]
    assert req["jobsched.io/gpu-memory"] == 6 * 2**30 and req["jobsched.io/gpu-milli"] == 250
    assert st["attempts"][0]["node"] == "l4-0"


def test_local_nodes_gpu_memory_is_validated(tmp_path):
    bad = tmp_path / "nodes.yaml"
    bad.write_text("- {name: a, cpu: 1, memory: 1Gi, gpus: 1, gpuModel: L4, gpuMemory: lots}\n")
    out = subprocess.run([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(tmp_path / "h"),
                          "--local-nodes", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--local-nodes: [0].gpuMemory: invalid quantity" in out.stderr
