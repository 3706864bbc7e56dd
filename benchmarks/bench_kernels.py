"""Samples/s of each kernel's fast path against its eager baseline, side by side, in one run.

    python benchmarks/bench_kernels.py [--kernels mlp,cnn] [--steps 60] [--rounds 3] [--threads 2]
                                       [--variants] [--json out.json]

Each variant trains on the same pre-generated batches (data generation is not timed). Variants are
timed in interleaved rounds (baseline, fast, baseline, fast, ...) and the median round is reported,
so a noisy shared machine affects both sides alike. Warm-up steps (and torch.compile's compilation)
are excluded. ``--variants`` also times the fast path with compile forced on and off, which is how
each kernel's COMPILE_BY_DEFAULT was chosen. ``--mxnet`` adds the MXNet Gluon MLP and CNN
(imperative baseline vs hybridized), timed the same way in the .venv-mxnet interpreter.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import NAMES  # noqa: E402


def _variants(with_compile_variants: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"eager": {"fast": False}, "fast": {"fast": True}}
    if with_compile_variants:
        out["fast+compile"] = {"fast": True, "compile": True}
        out["fast-nocompile"] = {"fast": True, "compile": False}
    return out


def _trainer(name: str, kwargs: dict[str, Any], n_batches: int) -> tuple[Any, int]:
    mod = importlib.import_module(f"kernels.{name}")
    cfg = mod.Config.from_kwargs(**kwargs)
    model, optimizer, loss_fn = mod.build(cfg)
    batches = [mod.make_batch(cfg, i) for i in range(n_batches)]
    state = {"i": 0}

    def step() -> float:
        x, y = batches[state["i"] % n_batches]
        state["i"] += 1
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step, cfg.batch_size


def bench_kernel(name: str, steps: int, rounds: int, extra: dict[str, Any], variants: bool) -> dict[str, Any]:
    import torch

    trainers = {}
    for label, kw in _variants(variants).items():
        step, batch = _trainer(name, {**extra, **kw}, n_batches=8)
        t0 = time.perf_counter()
        for _ in range(3):
            step()
        trainers[label] = (step, batch, time.perf_counter() - t0)
    # Rounds of at least ~0.5 s each: a tiny kernel's 40 steps take milliseconds, too short to time.
    step, _, _ = trainers["eager"]
    t0 = time.perf_counter()
    for _ in range(5):
        step()
    steps = max(steps, math.ceil(0.5 / ((time.perf_counter() - t0) / 5)))
    rates: dict[str, list[float]] = {label: [] for label in trainers}
    for _ in range(rounds):
        for label, (step, batch, _) in trainers.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[label].append(steps * batch / (time.perf_counter() - t0))
    result: dict[str, Any] = {"kernel": name, "batch_size": trainers["eager"][1], "steps_per_round": steps}
    for label in trainers:
        result[label] = round(statistics.median(rates[label]), 1)
        result[f"{label}_warmup_s"] = round(trainers[label][2], 2)
    result["speedup"] = round(result["fast"] / result["eager"], 3)
    return result


MXNET_BENCH = """
import json, statistics, sys, time
from kernels import mxnet_kernels as K
steps, rounds = int(sys.argv[1]), int(sys.argv[2])
out = []
for name in ("mlp", "cnn"):
    runs = {}
    for label, fast in (("eager", False), ("fast", True)):
        cfg = K.config(name, fast=fast)
        net, trainer, loss_fn = K.build(name, cfg)
        data = [K.batch(name, cfg, i) for i in range(8)]
        for i in range(3):
            K.train_step(net, trainer, loss_fn, *data[i]).asscalar()
        runs[label] = (net, trainer, loss_fn, data, cfg.batch_size)
    rates = {label: [] for label in runs}
    for _ in range(rounds):
        for label, (net, trainer, loss_fn, data, bs) in runs.items():
            t0 = time.perf_counter()
            for i in range(steps):
                loss = K.train_step(net, trainer, loss_fn, *data[i % 8])
            loss.asscalar()
            rates[label].append(steps * bs / (time.perf_counter() - t0))
    r = {"kernel": "mxnet-" + name, "batch_size": runs["eager"][4]}
    r.update({label: round(statistics.median(v), 1) for label, v in rates.items()})
    r["speedup"] = round(r["fast"] / r["eager"], 3)
    out.append(r)
print(json.dumps(out))
"""


def bench_mxnet(steps: int, rounds: int, threads: int) -> list[dict[str, Any]]:
    root = Path(__file__).resolve().parents[1]
    python = root / ".venv-mxnet" / "bin" / "python"
    if not python.exists():
        print("mxnet: no .venv-mxnet (create it with: bash tools/setup_mxnet_env.sh); skipped", file=sys.stderr)
        return []
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads or 2),
           "MXNET_CPU_WORKER_NTHREADS": str(threads or 2)}
    r = subprocess.run([str(python), "-c", MXNET_BENCH, str(steps), str(rounds)], env=env, cwd=root,
                       capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(r.stdout.strip().splitlines()[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernels", default=",".join(NAMES))
    p.add_argument("--steps", type=int, default=40, help="timed steps per round (at least ~0.5 s worth)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--variants", action="store_true", help="also time fast with compile on and off")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra hyperparameter for every kernel, e.g. --set batch_size=128")
    p.add_argument("--mxnet", action="store_true", help="also time the MXNet kernels in .venv-mxnet")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    extra = dict(kv.split("=", 1) for kv in args.set)
    results = [bench_kernel(k, args.steps, args.rounds, extra, args.variants) for k in args.kernels.split(",")]
    if args.mxnet:
        results += bench_mxnet(args.steps, args.rounds, args.threads)
    labels = [k for k in results[0] if k in _variants(args.variants)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.rounds} rounds "
          f"(each round >= {args.steps} steps and ~0.5 s), samples/s")
    header = f"{'kernel':<12}{'batch':>6}" + "".join(f"{lab:>16}" for lab in labels) + f"{'fast/eager':>12}"
    print(header)
    for r in results:
        print(f"{r['kernel']:<12}{r['batch_size']:>6}" + "".join(
            f"{r[lab]:>16.1f}" if lab in r else f"{'-':>16}" for lab in labels)
              + f"{r['speedup']:>11.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
