"""Accuracy of the pre-launch memory estimator against real training processes.

For every configuration of jobsched.rightsizing.zoo: the estimate (fake tensors, no data), and the
real peak RSS of a separate process running MEASURE_STEPS real training steps with one torch
thread (``python -m jobsched.rightsizing.baseline``). Prints a table, the median and p95 of
|estimate - measured| / measured, and writes benchmarks/data/memory_zoo.json, the "true peaks"
that the simulator and right-sizing benchmarks draw from.

    python benchmarks/bench_estimator.py [--only NAME ...] [--repeats N] [--out PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: the children and the baseline inherit it

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobsched.rightsizing.baseline import MEASURE_STEPS, baseline_bytes  # noqa: E402
from jobsched.rightsizing.estimator import estimate_factory  # noqa: E402
from jobsched.rightsizing.zoo import CONFIGS, Config  # noqa: E402

MB = 1 << 20


def measure(cfg: Config, steps: int) -> int:
    argv = [sys.executable, "-m", "jobsched.rightsizing.baseline", "--factory", cfg.factory,
            "--kwargs", json.dumps(cfg.kwargs), "--steps", str(steps)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, timeout=600)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", nargs="*", help="config names")
    p.add_argument("--repeats", type=int, default=1, help="real runs per config (median taken)")
    p.add_argument("--steps", type=int, default=MEASURE_STEPS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "memory_zoo.json")
    a = p.parse_args()
    import torch

    configs = [c for c in CONFIGS if not a.only or c.name in a.only]
    if not configs:
        sys.exit(f"--only: no such config (known: {', '.join(c.name for c in CONFIGS)})")
    base = baseline_bytes("cpu", refresh=True)  # measured now, in a fresh subprocess
    print(f"baseline (runtime, {os.environ['OMP_NUM_THREADS']} thread): {base / MB:.1f} MiB; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'config':26} {'params':>8} {'estimate':>9} {'measured':>9} {'error':>7} {'err>base':>8}"
          f" {'est s':>6} {'run s':>6}")
    rows, errors = [], []
    for cfg in configs:
        t0 = time.perf_counter()
        est = estimate_factory(cfg.factory, cfg.kwargs, "cpu")
        t1 = time.perf_counter()
        runs = [measure(cfg, a.steps) for _ in range(a.repeats)]
        t2 = time.perf_counter()
        real = int(statistics.median(runs))
        err = abs(est.peak_memory_bytes - real) / real
        above = est.peak_memory_bytes - base
        err_above = abs(above - (real - base)) / max(real - base, 1)
        errors.append(err)
        print(f"{cfg.name:26} {est.breakdown['parameters'] / MB:7.1f}M {est.peak_memory_bytes / MB:8.1f}M "
              f"{real / MB:8.1f}M {100 * err:6.1f}% {100 * err_above:7.1f}% {t1 - t0:6.1f} "
              f"{(t2 - t1) / a.repeats:6.1f}", flush=True)
        rows.append({"name": cfg.name, "factory": cfg.factory, "kwargs": cfg.kwargs,
                     "estimate_bytes": est.peak_memory_bytes, "breakdown": est.breakdown,
                     "measured_peak_bytes": real, "measured_runs": runs, "error": round(err, 4),
                     "error_above_baseline": round(err_above, 4)})
    median, p95 = statistics.median(errors), percentile(errors, 95)
    print(f"\n{len(rows)} configs: median error {100 * median:.1f}%, p95 error {100 * p95:.1f}% "
          f"(|estimate - measured| / measured, peak RSS incl. baseline)")
    above = [r["error_above_baseline"] for r in rows]
    print(f"above the baseline only: median {100 * statistics.median(above):.1f}%, "
          f"p95 {100 * percentile(above, 95):.1f}%")
    if a.only:
        return  # a partial run does not overwrite the committed data set
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "description": "Estimated and measured peak memory (bytes) of one CPU training process per "
                       "config; measured = peak RSS over real steps, estimate = jobsched estimator",
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": int(os.environ["OMP_NUM_THREADS"]), "steps": a.steps},
        "baseline_bytes": base,
        "summary": {"median_error": round(median, 4), "p95_error": round(p95, 4)},
        "configs": rows,
    }, indent=1) + "\n")
    print(f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out}")


if __name__ == "__main__":
    main()
