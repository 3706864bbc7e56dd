"""`jobsched list`: the first page, how to get the next, -A for all (real runtime over HTTP)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

from typer.testing import CliRunner

from jobsched.cli.main import build_app


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "200"})


def submit(live: Any, name: str) -> None:
    live.service.submit({"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
                         "spec": {"template": {"command": [sys.executable, "-c", "pass"],
                                               "nodeSelector": {"nowhere": "x"}}}})


def test_list_pages_and_all(live: Any) -> None:
    names = [f"page-{i}" for i in range(5)]
    for n in names:
        submit(live, n)
    r = cli("list", "--limit", "2")
    assert r.exit_code == 0, r.output
    shown = [n for n in names if n in r.stdout.split()]
    assert shown == names[:2]
    hint = r.stderr.strip()
    assert "2 shown, 3 more" in hint and "-A" in hint
    cmd = shlex.split(hint.split(": ", 1)[1].split("  (")[0])
    assert cmd[:2] == ["jobsched", "list"] and "--continue" in cmd
    r2 = cli(*cmd[1:])
    assert r2.exit_code == 0, (cmd, r2.output)
    assert r2.exit_code == 0 and [n for n in names if n in r2.stdout.split()] == names[2:4]
    r3 = cli("list", "-A", "-o", "json")
    assert r3.exit_code == 0 and [j["name"] for j in json.loads(r3.stdout)] == names
    assert "more" not in r3.stderr


def test_list_bad_limit_and_token_exit_2(live: Any) -> None:
    r = cli("list", "--limit", "0")
    assert r.exit_code == 2 and "limit" in r.stderr
    r = cli("list", "--continue", "nonsense!")
    assert r.exit_code == 2 and "continue" in r.stderr
