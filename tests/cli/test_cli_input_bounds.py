"""The CLI on hostile or careless input (issue 13, item 3): exit code 2, one ``error:`` line naming the
file or field, no traceback, nothing stored. Against a real server (tmp home)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app

ROOT = Path(__file__).resolve().parents[2]
HEAD = "apiVersion: jobsched.io/v1alpha1\nkind: TrainingJob\nmetadata: {name: j}\n"


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def no_traceback(r: Any) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output


def alias_bomb(indent: str) -> str:
    """The "billion laughs" (9^9 strings once expanded) as a mapping nested at ``indent``."""
    out = f'{indent}a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 9):
        out += f"{indent}a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


def test_run_memory_1e30_exits_2(live: Any) -> None:
    r = cli("run", "--memory", "1e30", "--", "true")
    assert r.exit_code == 2, r.output
    assert "spec.template.resources.requests.memory" in r.stderr and "out of range" in r.stderr
    no_traceback(r)
    r = cli("run", "--priority", str(2**63), "--", "true")
    assert r.exit_code == 2 and "spec.priority" in r.stderr
    r = cli("run", "--env", "A=x\0y", "--", "true")
    assert r.exit_code == 2 and "spec.template.env[0].value" in r.stderr
    assert live.service.list() == []


@pytest.mark.parametrize(("content", "why"), [
    (bytes(range(256)) * 4, "not UTF-8 text"),
    (b"apiVersion: !!python/object/apply:os.system [touch /tmp/pwned]\n", "could not determine a constructor"),
    ((HEAD + "spec: !!binary aGk=\n").encode(), "no JSON form"),
    (b"a: &a [*a]\n", "a recursive alias"),
])
@pytest.mark.parametrize("command", [["submit"], ["queue", "apply"], ["workflow", "lint"]])
def test_unsafe_or_binary_yaml_exits_2(live: Any, tmp_path: Path, content: bytes, why: str,
                                       command: list[str]) -> None:
    path = tmp_path / "in.yaml"
    path.write_bytes(content)
    r = cli(*command, str(path))
    assert r.exit_code == 2, r.output
    assert f"error: {path}: not valid YAML (" in r.stderr and why in r.stderr
    no_traceback(r)
    assert live.service.list() == []


def test_local_nodes_and_node_pool_files_are_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text("- !!python/object:os.system {name: a}\n")
    r = cli("server", "--home", str(tmp_path / "h"), "--local-nodes", str(path))
    assert r.exit_code == 2 and f"--local-nodes: {path}: not valid YAML (" in r.stderr
    no_traceback(r)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    r = cli("server", "--home", str(tmp_path / "h"), "--node-pool", str(path))
    assert r.exit_code == 2 and f"--node-pool: {path}: not valid YAML (not UTF-8 text" in r.stderr
    no_traceback(r)


def _limits() -> None:  # in the child: 2 GiB of address space and 60 s of CPU, whatever happens
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


def test_an_alias_bomb_in_factory_kwargs_fails_fast_without_memory_error(live: Any, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(HEAD + "spec:\n  memoryPolicy: Auto\n  rightSizing:\n    factory: m:f\n"
                    "    factoryKwargs:\n" + alias_bomb("      ") + "  template: {command: ['true']}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A real process under a memory and CPU cap: today's code ran into MemoryError after 45 s.
    proc = subprocess.run([sys.executable, "-m", "jobsched.cli.main", "submit", str(path)], env=env,
                          capture_output=True, text=True, preexec_fn=_limits, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: {path}: not valid YAML (more than 1000000 nodes once aliases are expanded" in proc.stderr
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr
    assert live.service.list() == []


def test_run_factory_kwargs_junk_exits_2(live: Any) -> None:
    for kwargs, why in (("[" * 100_000, "--factory-kwargs: not valid JSON"),
                        ('{"lr": NaN}', "spec.rightSizing.factoryKwargs.lr: must be a finite number"),
                        ('{"x": ' + "[" * 40 + "]" * 40 + "}", "nested more than 32 levels deep")):
        r = cli("run", "--factory", "m:f", "--factory-kwargs", kwargs, "--", "true")
        assert r.exit_code == 2 and why in r.stderr, r.output[-500:]
        no_traceback(r)
    assert live.service.list() == []
