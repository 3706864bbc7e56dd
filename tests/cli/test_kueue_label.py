"""`jobsched submit` of a manifest labelled for Kueue lands in the queue the label names (real
server, tmp home); the SDK path goes through the same API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobsched.sdk import Client
from tests.cli.test_cli_errors import cli

JOB = """\
apiVersion: jobsched.io/v1alpha1
kind: TrainingJob
metadata:
  name: {name}
  labels: {{kueue.x-k8s.io/queue-name: team-a}}
spec:
{queue}  template:
    command: [python, -c, "print('ok')"]
    resources:
      requests: {{memory: 64Mi}}
"""


def test_kueue_label_names_the_queue_when_spec_queue_is_unset(live: Any, tmp_path: Path) -> None:
    q = tmp_path / "q.yaml"
    q.write_text("apiVersion: jobsched.io/v1alpha1\nkind: Queue\nmetadata: {name: team-a}\n")
    assert cli("queue", "apply", str(q)).exit_code == 0
    labelled = tmp_path / "labelled.yaml"
    labelled.write_text(JOB.format(name="labelled", queue=""))
    r = cli("submit", str(labelled))
    assert r.exit_code == 0, r.output
    assert live.service.get("default", "labelled").queue == "team-a"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(JOB.format(name="explicit", queue="  queue: default\n"))
    assert cli("submit", str(explicit)).exit_code == 0
    assert live.service.get("default", "explicit").queue == "default"
    sdk = tmp_path / "sdk.yaml"
    sdk.write_text(JOB.format(name="sdk", queue="  queue: ''\n"))  # empty counts as unset
    with Client() as c:  # JOBSCHED_URL/TOKEN from the fixture
        assert c.submit(sdk).queue == "team-a"


def test_kueue_label_naming_a_missing_queue_is_a_clear_error(live: Any, tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text(JOB.format(name="nowhere", queue="").replace("team-a", "team-z"))
    r = cli("submit", str(p))
    assert r.exit_code == 2 and "spec.queue" in r.output and "team-z" in r.output
    assert live.service.list() == []
