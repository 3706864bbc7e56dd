"""`jobsched estimate`: a real estimate of a small kernel (torch, CPU), and bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app


def cli(*args: str) -> object:
    return CliRunner().invoke(build_app(), list(args))


def test_estimate_factory_json() -> None:
    pytest.importorskip("torch")
    r = cli("estimate", "--factory", "kernels.logreg:factory", "--kwargs", '{"batch_size": 8}', "-o", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["peak_memory_bytes"] > 0 and data["kwargs"] == {"batch_size": 8}
    assert sum(data["breakdown"].values()) == data["peak_memory_bytes"]


@pytest.mark.parametrize(("args", "message"), [
    ([], "either FILE or --factory"),
    (["job.yaml", "--factory", "m:f"], "either FILE or --factory"),
    (["--factory", "m:f", "--kwargs", "{bad"], "--kwargs: not JSON"),
    (["--factory", "m:f", "--kwargs", "[1]"], "--kwargs: expected a JSON object"),
    (["job.yaml"], "spec.rightSizing.factory"),
    (["bad.yaml"], "bad.yaml:5: spec.replicas"),
])
def test_estimate_bad_input_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    body = "metadata: {name: x}\nspec:\n  template:\n    command: [sleep, '1']\n"
    (tmp_path / "job.yaml").write_text(body)
    (tmp_path / "bad.yaml").write_text(body + "  replicas: 0\n")
    r = cli("estimate", *args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
