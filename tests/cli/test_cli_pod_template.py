"""The CLI on bad pod-template fields: exit code 2, one ``error:`` line naming the field, no
traceback, nothing stored; ``--ttl-after-finished`` only with the Kubernetes backend. Against a real
server (tmp home)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.test_cli_input_bounds import HEAD, cli, no_traceback


def test_bad_toleration_in_a_manifest_exits_2_naming_the_field(live: Any, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(HEAD + "spec:\n  template:\n    command: [\"true\"]\n"
                    "    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoScheduel}]\n")
    r = cli("submit", str(path))
    assert r.exit_code == 2, r.output
    assert "spec.template.tolerations[0].effect: 'NoScheduel' is not one of NoSchedule" in r.stderr
    no_traceback(r)
    path.write_text(HEAD + "spec:\n  template:\n    command: [\"true\"]\n"
                    "    volumeMounts: [{name: data, mountPath: /data}]\n")
    r = cli("submit", str(path))
    assert r.exit_code == 2 and "spec.template.volumeMounts[0].name: no volume named 'data'" in r.stderr
    no_traceback(r)
    assert live.service.list() == []


def test_ttl_after_finished_flag_needs_the_kubernetes_backend(tmp_path: Path) -> None:
    r = cli("server", "--home", str(tmp_path / "h"), "--ttl-after-finished", "60")
    assert r.exit_code == 2 and "--ttl-after-finished: only with --backend kubernetes" in r.stderr
    no_traceback(r)


def test_watch_flags_need_the_kubernetes_backend(tmp_path: Path) -> None:
    for flag in ("--watch-kubeflow", "--watch-volcano", "--watch-jobs"):
        r = cli("server", "--home", str(tmp_path / "h"), flag)
        assert r.exit_code == 2 and f"{flag}: only with --backend kubernetes" in r.stderr
        no_traceback(r)
