"""benchmarks/gpu_kernels.py: the batch the estimator picks, the run plan, and the CPU dry run end to end
(the GPU run itself needs an H100; see docs/kernels.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_kernels", ROOT / "benchmarks" / "gpu_kernels.py")
assert spec and spec.loader
gk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gk)


def test_auto_batch_is_the_largest_candidate_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    per_sample = 1 << 30  # a GiB a sample, plus a fixed 2 GiB
    monkeypatch.setattr(gk, "estimate", lambda kw: {"peak_bytes": (2 << 30) + kw["batch_size"] * per_sample})
    best, seen = gk.auto_batch({"batch_size": 1}, capacity=50 << 30)
    assert best == 48  # 2 + 48 = 50 GiB fits; 64 would need 66
    assert len(seen) <= 4  # a binary search over the candidates, not a scan
    best, _ = gk.auto_batch({"batch_size": 1}, capacity=1 << 30)
    assert best is None  # even 4 samples do not fit


def test_auto_batch_gives_up_when_the_estimator_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gk, "estimate", lambda kw: {"error": "estimator not importable: pydantic"})
    assert gk.auto_batch({"batch_size": 1}, capacity=80 << 30)[0] is None


def test_plan_sweeps_the_batches_then_the_auto_batch_then_cuda_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gk, "auto_batch", lambda kw, cap, key="peak_bytes": (64, [(64, 1)]))
    args = gk.parse_args(["--configs", "small,760m", "--batches", "16,32", "--global-batch", "64"])
    runs = [(c, kw["batch_size"], accum, label) for c, kw, accum, label in gk.plan(args, "cuda", 72 << 30)]
    assert runs[0] == ("small", 16, 1, "eager fp32")
    assert ("small", 32, 2, "fast bf16") in runs  # two micro-batches of 32 make the global 64
    assert ("small", 64, 1, "fast bf16 + CUDA graphs") in runs
    assert [r for r in runs if r[0] == "760m"] == [("760m", 8, 8, "fast bf16"), ("760m", 64, 1, "fast bf16"),
                                                   ("760m", 64, 1, "fast bf16 + CUDA graphs")]


def test_bad_flags_are_refused_naming_the_flag() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_kernels.py"), "--configs", "huge"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--configs: unknown huge" in r.stderr


@pytest.mark.slow
def test_dry_run_prints_and_writes_the_table(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_kernels.py"), "--dry-run", "--configs",
                        "small", "--batches", "8", "--no-auto-batch"], capture_output=True, text=True,
                       timeout=900, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "gpu_kernels.md").read_text()
    assert "eager fp32" in table and "fast bf16" in table
    assert "small: best fast bf16" in table
