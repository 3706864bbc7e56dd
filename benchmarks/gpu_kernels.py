"""GPU check of the transformer kernel: bf16 samples/s and MFU (fast path vs eager fp32 baseline), and
the memory estimator's prediction against torch.cuda.max_memory_allocated.

    python benchmarks/gpu_kernels.py                     # on a GPU machine (defaults: a ~135M-parameter GPT-2-small-like LM)
    python benchmarks/gpu_kernels.py --dry-run           # CPU, tiny sizes: checks the script end to end
    python benchmarks/gpu_kernels.py --set layers=24 --steps 30 --json out.json

MFU = achieved training FLOP/s / the device's dense bf16 peak (--peak-tflops, else looked up from the
device name: H100/H200 989, A100 312, L4 121, ...). FLOPs per sample come from
kernels.transformer.train_flops_per_sample (6 x weights x tokens + causal attention).
The estimator (jobsched/rightsizing/estimator.py) is optional: when it cannot be imported or fails, the
memory comparison says so and the throughput figures are still printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GPU_DEFAULTS = {"d_model": 768, "layers": 12, "heads": 12, "seq_len": 1024, "vocab": 32768, "batch_size": 16}
DRY_DEFAULTS = {"d_model": 64, "layers": 2, "heads": 4, "seq_len": 64, "vocab": 256, "batch_size": 4}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def measure(kwargs: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    import torch

    from kernels import transformer as tk

    cfg = tk.Config.from_kwargs(**kwargs)
    cuda = cfg.device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, optimizer, loss_fn = tk.build(cfg)
    batches = [tk.make_batch(cfg, i) for i in range(4)]

    def step(i: int) -> torch.Tensor:
        x, y = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    final = float(loss)  # synchronizes
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"samples_per_s": steps * cfg.batch_size / elapsed, "step_ms": 1000 * elapsed / steps,
           "warmup_s": warm_s, "final_loss": final, "flops_per_sample": tk.train_flops_per_sample(cfg),
           "max_memory_allocated": torch.cuda.max_memory_allocated() if cuda else None}
    out["tflops"] = out["samples_per_s"] * out["flops_per_sample"] / 1e12
    return out


def estimate(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The estimator's prediction for kernels.transformer:factory, or why there is none."""
    try:
        from jobsched.rightsizing.estimator import estimate_factory
    except Exception as e:  # noqa: BLE001 - optional: written and shipped separately
        return {"error": f"estimator not importable: {type(e).__name__}: {e}"}
    try:
        est = estimate_factory("kernels.transformer:factory", kwargs, kwargs.get("device", "cpu"))
    except Exception as e:  # noqa: BLE001
        return {"error": f"estimator failed: {type(e).__name__}: {e}"}
    if est.device_breakdown is not None:  # a CUDA job: the allocated part of the device figure
        allocated = sum(v for k, v in est.device_breakdown.items() if k not in ("allocator_reserve", "cuda_context"))
        return {"tensor_bytes": allocated, "device_peak_bytes": est.device_peak_bytes}
    return {"tensor_bytes": est.peak_memory_bytes - est.breakdown["baseline"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU and tiny sizes (no GPU needed)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (torch.compile compiles here)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 dense peak, TFLOP/s")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="transformer hyperparameter")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run to check the script on CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    base = {**(DRY_DEFAULTS if args.dry_run else GPU_DEFAULTS), "device": device,
            **dict(kv.split("=", 1) for kv in args.set)}
    if args.dry_run:
        args.steps, args.warmup = min(args.steps, 3), min(args.warmup, 1)
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    report: dict[str, Any] = {"device": name, "torch": torch.__version__, "config": base, "peak_tflops": peak}
    # precision=auto: the fast path autocasts to bf16 on CUDA; the baseline stays fp32 (explicit attention).
    for label, extra in (("eager_fp32", {"fast": False}), ("fast_bf16", {"fast": True, "precision": "bf16"})):
        r = measure({**base, **extra}, args.steps, args.warmup)
        r["mfu"] = r["tflops"] / peak if peak else None
        report[label] = r
    report["speedup"] = report["fast_bf16"]["samples_per_s"] / report["eager_fp32"]["samples_per_s"]
    report["estimate"] = {label: estimate({**base, **extra}) for label, extra in
                          (("eager_fp32", {"fast": False}), ("fast_bf16", {"fast": True, "precision": "bf16"}))}

    print(f"device: {name}  torch {torch.__version__}  peak bf16: {peak or 'unknown'} TFLOP/s")
    print(f"config: {base}")
    print(f"{'variant':<12}{'samples/s':>12}{'step ms':>10}{'TFLOP/s':>10}{'MFU':>8}{'max_alloc MiB':>15}"
          f"{'estimate MiB':>14}{'est/actual':>11}")
    for label in ("eager_fp32", "fast_bf16"):
        r, e = report[label], report["estimate"][label]
        alloc = r["max_memory_allocated"]
        # The estimate includes a per-process baseline (CUDA context, allocator slack) that
        # max_memory_allocated does not count: compare the tensor part (with cuBLAS's workspace).
        tensors = e.get("tensor_bytes")
        ratio = f"{tensors / alloc:.2f}" if tensors and alloc else "n/a"
        print(f"{label:<12}{r['samples_per_s']:>12.1f}{r['step_ms']:>10.1f}{r['tflops']:>10.3f}"
              f"{(format(r['mfu'], '.1%') if r['mfu'] is not None else 'n/a'):>8}"
              f"{(f'{alloc / 2**20:.0f}' if alloc else 'n/a'):>15}"
              f"{(f'{tensors / 2**20:.0f}' if tensors is not None else 'n/a'):>14}{ratio:>11}")
        if "error" in e:
            print(f"  estimate: {e['error']}")
    print(f"fast/eager: {report['speedup']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
