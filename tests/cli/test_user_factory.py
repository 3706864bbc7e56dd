"""The user's own factory is estimated by the server where the user's code lives (the manifest's
directory for `submit`, the current directory for `run`); a failed estimate says how to fix it.
Real server, real estimator child process, real torch."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app

TRAIN_PY = '''
import torch


def factory(hidden: int = 64):
    model = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, (torch.randn(8, hidden), torch.randint(0, 2, (8,))), torch.nn.functional.cross_entropy
'''


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def event(rt: Any, name: str, reason: str, timeout: float = 180.0) -> Any:
    """Wait (on the condition, not a fixed time) until the job has an event ``reason``."""
    deadline = time.monotonic() + timeout
    while True:
        st = rt.service.get("default", name)
        found = [e for e in st.events if e.reason == reason]
        if found:
            return found[0], st
        assert time.monotonic() < deadline, [(e.reason, e.message) for e in st.events]
        time.sleep(0.1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN_PY)
    return proj


@pytest.mark.slow
@pytest.mark.torch
def test_submit_estimates_a_factory_next_to_the_manifest(live: Any, project: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    (project / "job.yaml").write_text(
        "apiVersion: jobsched.io/v1alpha1\nkind: TrainingJob\nmetadata: {name: mine}\n"
        "spec:\n  memoryPolicy: Auto\n  rightSizing: {factory: 'train:factory'}\n"
        f"  template: {{command: [{sys.executable}, -c, 'import train']}}\n")
    monkeypatch.chdir(tmp_path)  # elsewhere: the manifest's directory is what counts
    r = cli("submit", "proj/job.yaml")
    assert r.exit_code == 0, r.output
    ev, st = event(live, "mine", "Estimated")
    assert ev.type == "Normal" and st.manifest["spec"]["template"]["workingDir"] == str(project)
    assert st.sizing.estimated_memory and st.sizing.estimated_memory > 0
    assert not any(e.reason == "EstimateFailed" for e in st.events)
    r = cli("status", "mine", "-o", "json")  # the replica runs there too: `import train` works
    assert r.exit_code == 0


@pytest.mark.slow
@pytest.mark.torch
def test_run_factory_is_estimated_from_the_current_directory(live: Any, project: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(project)
    r = cli("run", "--name", "ran", "--memory-policy", "Auto", "--factory", "train:factory",
            "--factory-kwargs", '{"hidden": 32}', "--", sys.executable, "-c", "pass")
    assert r.exit_code == 0, r.output
    ev, st = event(live, "ran", "Estimated")
    rs = st.manifest["spec"]["rightSizing"]
    assert rs["factory"] == "train:factory" and rs["factoryKwargs"] == {"hidden": 32}
    assert st.manifest["spec"]["template"]["workingDir"] == str(project)
    sized, _ = event(live, "ran", "Sized")
    assert "estimate" in sized.message


@pytest.mark.slow
@pytest.mark.torch
def test_a_factory_that_cannot_be_imported_is_a_warning_naming_module_and_directory(
        live: Any, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(project)
    r = cli("run", "--name", "typo", "--memory", "64Mi", "--memory-policy", "Auto",
            "--factory", "trian:factory", "--", sys.executable, "-c", "pass")
    assert r.exit_code == 0, r.output
    ev, _ = event(live, "typo", "EstimateFailed")
    assert ev.type == "Warning"
    assert f"module 'trian' could not be imported from {project}" in ev.message
    assert "to fix: put trian.py in" in ev.message


def test_bad_factory_options_exit_2_naming_the_option(live: Any) -> None:
    r = cli("run", "--factory", "train:factory", "--factory-kwargs", "{hidden: 1", "--", "true")
    assert r.exit_code == 2 and "--factory-kwargs: not valid JSON" in r.output
    r = cli("run", "--factory", "train:factory", "--factory-kwargs", "[1]", "--", "true")
    assert r.exit_code == 2 and "--factory-kwargs: expected a JSON object" in r.output
    r = cli("run", "--factory", "train.py", "--", "true")
    assert r.exit_code == 2 and "spec.rightSizing.factory: expected 'module:function'" in r.output
    assert live.service.list() == []


def test_memory_below_1mi_is_exit_2_and_422_naming_the_field(live: Any) -> None:
    import httpx

    for value in ("0", "1e-30", "100"):
        r = cli("run", "--memory", value, "--", "true")
        assert r.exit_code == 2, r.output
        assert "spec.template.resources.requests.memory: must be at least 1Mi" in r.output
    base = {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "zero"}}
    headers = {"Authorization": f"Bearer {os.environ['JOBSCHED_TOKEN']}"}
    for where, value in (("limits", 0), ("requests", "1e-30")):
        body = {**base, "spec": {"template": {"command": ["true"], "resources": {where: {"memory": value}}}}}
        resp = httpx.post(f"{os.environ['JOBSCHED_URL']}/v1/jobs", json=body, headers=headers)
        assert resp.status_code == 422
        assert f"spec.template.resources.{where}.memory: must be at least 1Mi" in resp.json()["detail"]
    assert live.service.list() == []


def test_queues_show_the_default_memory(live: Any, tmp_path: Path) -> None:
    (tmp_path / "q.yaml").write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\n"
                                     "metadata: {name: small}\nspec: {defaultMemory: 256Mi}\n")
    assert cli("queue", "apply", str(tmp_path / "q.yaml")).exit_code == 0
    r = cli("queues")
    assert r.exit_code == 0 and "DEFAULT MEMORY" in r.stdout
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line.strip()}
    assert "1Gi" in rows["default"] and "256Mi" in rows["small"]
    qs = {q["name"]: q for q in json.loads(cli("queues", "-o", "json").stdout)}
    assert qs["default"]["defaultMemory"] == 2**30 and qs["small"]["defaultMemory"] == 256 * 2**20
    (tmp_path / "bad.yaml").write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\n"
                                       "metadata: {name: tiny}\nspec: {defaultMemory: 0}\n")
    r = cli("queue", "apply", str(tmp_path / "bad.yaml"))
    assert r.exit_code == 2 and "spec.defaultMemory: must be at least 1Mi" in r.output


def test_submit_resolves_working_dir_against_the_manifest(live: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    head = "apiVersion: jobsched.io/v1alpha1\nkind: TrainingJob\n"
    (proj / "rel.yaml").write_text(head + "metadata: {name: rel}\n"
                                   "spec: {template: {command: ['true'], workingDir: sub}}\n")
    (proj / "img.yaml").write_text(head + "metadata: {name: img}\n"
                                   "spec: {template: {command: ['true'], image: 'python:3.11'}}\n")
    monkeypatch.chdir(tmp_path)
    assert cli("submit", "proj/rel.yaml").exit_code == 0
    assert cli("submit", "proj/img.yaml").exit_code == 0
    assert live.service.get("default", "rel").manifest["spec"]["template"]["workingDir"] == str(proj / "sub")
    assert "workingDir" not in live.service.get("default", "img").manifest["spec"]["template"]
