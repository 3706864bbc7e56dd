"""The workflow examples lint clean and run as their comments say (local backend)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from jobsched.workflows.lint import load
from tests.workflows.conftest import by_display

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"
WORKFLOWS = ["ml-pipeline", "coinflip-recursive", "gang-step"]


def doc(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", WORKFLOWS)
def test_examples_lint_clean(name: str) -> None:
    _, warnings = load(doc(name))
    assert warnings == []


@pytest.mark.slow
def test_ml_pipeline(wfh):
    st = wfh.run(doc("ml-pipeline"), {"epochs": "150"}, timeout=90)
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    assert [a.phase for a in n["train(0:0.01)"].attempts] == ["Succeeded"]
    mses = [float(by_display(st)[k].outputs["parameters"]["mse"]) for k in ("train(0:0.01)", "train(1:0.1)")]
    assert mses[1] < mses[0]  # the larger rate converges within 150 epochs
    assert n["select"].outputs["parameters"]["best-lr"] == "0.1"
    assert n["evaluate"].outputs["result"] == "pass"
    assert n["promote"].outputs["result"] == "promoted the model trained with lr=0.1"
    assert n["select"].started_at >= max(n["train(0:0.01)"].finished_at, n["train(1:0.1)"].finished_at)
    report = st.nodes[f"{st.name}.onExit"].outputs["result"]
    assert report == f"{st.name} Succeeded: best mse {st.outputs['best-mse']}"


@pytest.mark.slow
def test_coinflip_recursive(wfh):
    st = wfh.run(doc("coinflip-recursive"), timeout=90)
    assert st.phase == "Succeeded", st.message
    flips = sorted((x for x in st.nodes.values() if x.display_name == "flip-coin"), key=lambda x: x.started_at)
    assert [f.outputs["result"] for f in flips] == ["tails"] * (len(flips) - 1) + ["heads"]
    assert by_display(st)["heads"].outputs["result"] == "it was heads"


@pytest.mark.slow
@pytest.mark.torch
def test_gang_step_allreduce(wfh):
    st = wfh.run(doc("gang-step"), timeout=120)
    assert st.phase == "Succeeded", st.message
    assert by_display(st)["report"].outputs["result"] == "sum of ranks+1 over the gang: 3"


def _succeeded(service, name: str) -> None:
    deadline = time.monotonic() + 240
    while not (st := service.get("default", name)).phase.is_terminal():
        assert time.monotonic() < deadline, f"{name} still {st.phase.value}: {st.message}"
        time.sleep(0.1)
    if st.phase.value != "Succeeded":  # say why: the message, the events and every replica's log tail
        events = [f"{e.reason}: {e.message}" for e in service.events("default", name)]
        logs = service.logs("default", name)[0][-3000:]
        raise AssertionError(f"{name} {st.phase.value}: {st.message}\nevents: {events}\nlogs: {logs}")


@pytest.mark.slow
@pytest.mark.torch
def test_kubeflow_examples(wfh):
    svc = wfh.runtime.service
    svc.submit(doc("pytorchjob"))
    svc.submit(doc("mxjob"))
    _succeeded(svc, "pytorch-allreduce")
    lines = sorted(ln.split(" ", 2)[2] for ln in svc.logs("default", "pytorch-allreduce")[0].splitlines())
    assert lines == ["rank 0/3: sum 6", "rank 1/3: sum 6", "rank 2/3: sum 6"]
    _succeeded(svc, "mxnet-roles")
    lines = sorted(ln.split(" ", 2)[2] for ln in svc.logs("default", "mxnet-roles")[0].splitlines())
    assert [ln.split(" at ")[0] for ln in lines] == ["scheduler", "server", "worker", "worker"]
    assert all(ln.endswith("servers=1 workers=2") and "127.0.0.1:" in ln for ln in lines)
