"""benchmarks/gpu_check.py --dry-run: runs without a GPU, estimates part 2's models for CUDA, plans
(or skips, naming the missing feature) the parts that need a GPU, and writes its table to $OUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.torch
def test_gpu_check_dry_run_prints_and_writes_one_table(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "OUT": str(tmp_path), "JOBSCHED_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
            "--models", "gru-adamw,kernel-transformer-bf16"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "gpu_check.md").read_text()
    assert table in r.stdout and table.startswith("GPU check (dry run, no GPU")
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| ") and " | " in line}
    for name in ("gru-adamw", "kernel-transformer-bf16"):
        assert "| ESTIMATED | estimate " in rows[name]
    assert "mlp-wide-adam" not in rows  # only the models asked for
    parts = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert {"| 1", "| 2", "| 3", "| 4"} <= set(parts)
    for line in table.splitlines():
        if line.startswith(("| 1 ", "| 3 ", "| 4 ")):
            assert "| PLANNED |" in line or "| SKIP (feature missing: " in line


def test_gpu_check_without_a_gpu_asks_for_dry_run() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--parts", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--dry-run" in r.stderr
