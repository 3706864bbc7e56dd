"""``jobsched simulate``: JSON shape, plots, and clear exit-2 errors that name the option."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jobsched.cli.simulate import register

DATA = Path(__file__).parent / "data"
NODES, PODS = str(DATA / "nodes.csv"), str(DATA / "pods.csv")


def app() -> typer.Typer:
    a = typer.Typer()
    register(a)

    @a.command("noop")
    def noop() -> None:  # a second command so that Typer keeps "simulate" as a subcommand
        pass

    return a


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app(), ["simulate", *args])
    return r.exit_code, r.stdout if r.exit_code == 0 else r.output  # progress lines go to stderr


def test_packing_json_has_the_documented_shape() -> None:
    code, out = invoke("--nodes", NODES, "--pods", PODS, "--policy", "fgd", "--policy", "jobsched",
                       "--seeds", "2", "-o", "json")
    assert code == 0, out
    rep = json.loads(out)
    assert set(rep["policies"]) == {"fgd", "jobsched"}
    for pol in rep["policies"].values():
        assert set(pol["allocated_pct"]) == {"90", "100", "110", "120", "130"}
        assert set(pol["spread"]) == set(pol["allocated_pct"])
    assert rep["seeds"] == [42, 43]


def test_plot_is_written(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    code, out = invoke("--nodes", NODES, "--pods", PODS, "--policy", "bestfit", "--seeds", "1",
                       "--plot", str(png))
    assert code == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bestfit" in out


def test_replay_mode_reports_delays() -> None:
    code, out = invoke("--nodes", NODES, "--pods", PODS, "--mode", "replay", "-o", "json")
    assert code == 0, out
    rep = json.loads(out)["policies"]["jobsched"]
    assert {"queueing_delay_s", "jct_s", "cost_usd", "series"} <= set(rep)


@pytest.mark.parametrize(("args", "option", "text"), [
    (["--nodes", "missing.csv", "--pods", PODS], "--nodes", "does not exist"),
    (["--nodes", NODES], "--pods", "is required"),
    (["--nodes", NODES, "--pods", PODS, "--policy", "nope"], "--policy", "unknown policy 'nope'"),
    (["--nodes", NODES, "--pods", PODS, "--inflate", "-1"], "--inflate", "(0, 10]"),
    (["--nodes", NODES, "--pods", PODS, "--seeds", "0"], "--seeds", "between 1 and 1000"),
    (["--nodes", NODES, "--pods", PODS, "--mode", "fast"], "--mode", "packing, replay, memory"),
    (["--nodes", NODES, "--pods", NODES], "--pods", "lacks column"),
])
def test_bad_input_exits_2_naming_the_option(args: list[str], option: str, text: str) -> None:
    code, out = invoke(*args)
    assert code == 2
    assert option in out and text in out


def test_memory_mode_without_its_module_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jobsched.sim.memory", None)  # import fails
    code, out = invoke("--mode", "memory", "--pods", PODS)
    assert code == 2 and "--mode memory is not available" in out


def test_memory_mode_dispatches_to_run_memory_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls = []
    fake = types.ModuleType("jobsched.sim.memory")
    fake.run_memory_mode = lambda pods, seeds, **kw: calls.append((pods, seeds)) or {"mode": "memory"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jobsched.sim.memory", fake)
    code, out = invoke("--mode", "memory", "--pods", PODS, "--seeds", "2", "-o", "json")
    assert code == 0, out
    assert calls == [(PODS, [42, 43])] and json.loads(out) == {"mode": "memory"}
