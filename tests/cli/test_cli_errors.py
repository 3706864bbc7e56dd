"""CLI bad input: exit code 2 with a message naming the field path, and nothing stored; exit code 3
when the server is unreachable or refuses the token. Runs against a real Runtime (tmp home)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app
from tests.api.live import free_port

GOOD = """\
apiVersion: jobsched.io/v1alpha1
kind: TrainingJob
metadata:
  name: {name}
spec:
  replicas: 1
  template:
    command: [python, -c, "print('ok')"]
    resources:
      requests: {{memory: 256Mi}}
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def stored(rt: Any) -> list[str]:
    return [j.name for j in rt.service.list()]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.format(name="a").replace("  replicas: 1", "  replicas: [1"), "job.yaml:7:"),  # malformed YAML
    (GOOD.format(name="a").replace("  replicas: 1", "  replicaz: 2"), "job.yaml:6: spec.replicaz: unknown field"),
    (GOOD.format(name="a").replace("256Mi", "lots"), "job.yaml:10: spec.template.resources.requests.memory"),
    (GOOD.format(name="a").replace("replicas: 1", "replicas: 0"), "job.yaml:6: spec.replicas"),
    (GOOD.format(name="Bad_Name"), "job.yaml:4: metadata.name"),
    (GOOD.format(name="a").replace("    command: [python, -c, \"print('ok')\"]\n", ""),
     "spec.template.command"),
])
def test_submit_bad_manifest_exits_2_naming_the_field(live: Any, tmp_path: Path, text: str,
                                                      expected: str) -> None:
    r = cli("submit", str(write(tmp_path, text)))
    assert r.exit_code == 2, r.output
    assert expected in r.stderr
    assert stored(live) == []


def test_run_bad_options_exit_2(live: Any) -> None:
    r = cli("run", "--replicas", "0", "--", "python", "-c", "pass")
    assert r.exit_code == 2 and "spec.replicas" in r.stderr
    r = cli("run", "--memory", "1Gx", "--", "python", "-c", "pass")
    assert r.exit_code == 2 and "spec.template.resources" in r.stderr
    r = cli("run", "--memory-policy", "Sometimes", "--", "python", "-c", "pass")
    assert r.exit_code == 2 and "spec.memoryPolicy" in r.stderr
    r = cli("run", "--env", "NOEQUALS", "--", "python", "-c", "pass")
    assert r.exit_code == 2 and "--env" in r.stderr
    assert stored(live) == []


def test_unknown_queue_is_refused_by_the_server(live: Any) -> None:
    r = cli("run", "--queue", "nosuch", "--name", "q", "--", "python", "-c", "pass")
    assert r.exit_code == 2
    assert "spec.queue" in r.stderr and "nosuch" in r.stderr
    assert stored(live) == []


def test_name_taken_exit_2_and_first_job_kept(live: Any, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="taken"))
    first = cli("submit", str(path))
    assert first.exit_code == 0, first.output
    assert "default/taken submitted" in first.stdout
    r = cli("submit", str(path))
    assert r.exit_code == 2 and "metadata.name" in r.stderr
    assert stored(live) == ["taken"]


def test_unknown_job_exit_2(live: Any) -> None:
    for args in (["status", "ghost"], ["logs", "ghost"], ["cancel", "ghost"], ["events", "ghost"]):
        r = cli(*args)
        assert r.exit_code == 2 and "default/ghost" in r.stderr, args


def test_wrong_token_exit_3(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSCHED_TOKEN", "not-the-token")
    r = cli("list")
    assert r.exit_code == 3 and "invalid bearer token" in r.stderr


def test_no_server_exit_3_without_autostart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("JOBSCHED_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("JOBSCHED_HOME", str(home))
    for args in (["list"], ["status", "x"], ["run", "--", "python", "-c", "pass"]):
        r = cli(*args)
        assert r.exit_code == 3, r.output
        assert "no jobsched server at" in r.stderr
    assert not (home / "server.log").exists()  # an explicit URL is never autostarted


def test_server_status_without_server_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSCHED_URL", f"http://127.0.0.1:{free_port()}")
    r = cli("server", "status", "--home", str(tmp_path))
    assert r.exit_code == 3 and "none running" in r.stdout
    r = cli("server", "stop", "--home", str(tmp_path))
    assert r.exit_code == 0 and "no jobsched server running" in r.stdout


def test_server_local_nodes_file_is_validated(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "nodes.yaml"
    bad.write_text("- {name: a, cpu: 1, memory: 1Gi, disk: 3}\n")
    out = subprocess.run([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(tmp_path / "h"),
                          "--local-nodes", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--local-nodes: [0].disk: unknown field" in out.stderr
    assert not (tmp_path / "h" / "state.db").exists()  # nothing started, nothing written
