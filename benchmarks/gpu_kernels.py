"""GPU check of the transformer kernel (issue #15 item 5): samples/s and MFU of the fast path against
the eager fp32 baseline, a batch sweep, the estimator-chosen batch (``--auto-batch``), CUDA graphs, and
the memory estimator's prediction against torch.cuda.max_memory_allocated. One table, in <= 6 minutes
on one H100 (``--budget-s``: what does not fit is listed as skipped, never silently dropped).

    python benchmarks/gpu_kernels.py                  # on a GPU machine: GPT-2-small-like and ~760M configs
    python benchmarks/gpu_kernels.py --dry-run        # CPU, tiny sizes: checks the script end to end
    python benchmarks/gpu_kernels.py --configs small --batches 16,32,64 --global-batch 64 --cuda-graphs

Configs: ``small`` (d 768, 12 layers, 12 heads, seq 1024, vocab 32768: GPT-2 small) and ``760m``
(d 1536, 24 layers, 16 heads, seq 1024). The fast path is bf16 autocast, flash attention (SDPA),
torch.compile of the model and of the loss, TF32, fused Adam; ``--cuda-graphs`` adds a run with
``compile_mode=reduce-overhead`` at the best batch. ``--auto-batch`` asks the estimator
(jobsched/rightsizing/estimator.py) for the largest micro-batch whose device peak fits 90 % of the
device; ``--global-batch G`` accumulates ceil(G / micro) micro-batches per optimizer step.
MFU = achieved training FLOP/s / the device's dense bf16 peak (``--peak-tflops``, else from the
device name: H100/H200 989, A100 312, ...); FLOPs per sample from
kernels.transformer.train_flops_per_sample (6 x weights x tokens + causal attention).
The GPU machine has no network: pydantic (for the estimator) is installed from ``./.whl`` when
missing (``pip download --python-version 3.12 --only-binary=:all: pydantic -d .whl`` here first).
Writes the table to ``$OUT/gpu_kernels.md`` when OUT is set, and JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONFIGS = {
    "small": {"d_model": 768, "layers": 12, "heads": 12, "seq_len": 1024, "vocab": 32768, "batch_size": 16},
    "760m": {"d_model": 1536, "layers": 24, "heads": 16, "seq_len": 1024, "vocab": 32768, "batch_size": 8},
}
DRY = {"small": {"d_model": 64, "layers": 2, "heads": 4, "seq_len": 64, "vocab": 256, "batch_size": 4},
       "760m": {"d_model": 96, "layers": 3, "heads": 4, "seq_len": 64, "vocab": 256, "batch_size": 2}}
CANDIDATES = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
EAGER = {"fast": False}
FAST = {"fast": True, "precision": "bf16"}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def measure(kwargs: dict[str, Any], steps: int, warmup: int, accum: int = 1) -> dict[str, Any]:
    """Train ``warmup`` untimed then ``steps`` timed optimizer steps of ``accum`` micro-batches each."""
    import torch

    from kernels import transformer as tk

    cfg = tk.Config.from_kwargs(**kwargs)
    cuda = cfg.device == "cuda"
    torch._dynamo.reset()  # each config compiles afresh (static shapes, no stale graphs)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, optimizer, loss_fn = tk.build(cfg)
    batches = [tk.make_batch(cfg, i) for i in range(4)]

    def step(i: int) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        for j in range(accum):
            x, y = batches[(i * accum + j) % len(batches)]
            loss = loss_fn(model(x), y)
            (loss / accum if accum > 1 else loss).backward()
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
    samples = steps * cfg.batch_size * accum
    out: dict[str, Any] = {"samples_per_s": samples / elapsed, "step_ms": 1000 * elapsed / steps,
                           "warmup_s": warm_s, "final_loss": final, "batch": cfg.batch_size, "accum": accum,
                           "flops_per_sample": tk.train_flops_per_sample(cfg),
                           "max_memory_allocated": torch.cuda.max_memory_allocated() if cuda else None}
    out["tflops"] = out["samples_per_s"] * out["flops_per_sample"] / 1e12
    return out


def estimate(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The estimator's prediction for kernels.transformer:factory, or why there is none."""
    try:
        from jobsched.rightsizing.estimator import estimate_factory
    except Exception as e:  # noqa: BLE001 - optional: pydantic may be missing on the GPU machine
        return {"error": f"estimator not importable: {type(e).__name__}: {e}"}
    try:
        est = estimate_factory("kernels.transformer:factory", kwargs, kwargs.get("device", "cpu"))
    except Exception as e:  # noqa: BLE001
        return {"error": f"estimator failed: {type(e).__name__}: {e}"}
    if est.device_breakdown is not None:  # a CUDA job: the allocated part of the device figure
        allocated = sum(v for k, v in est.device_breakdown.items() if k not in ("allocator_reserve", "cuda_context"))
        return {"tensor_bytes": allocated, "peak_bytes": est.device_peak_bytes}
    return {"tensor_bytes": est.peak_memory_bytes - est.breakdown["baseline"], "peak_bytes": est.peak_memory_bytes}


def auto_batch(kwargs: dict[str, Any], capacity: int, key: str = "peak_bytes",
               ) -> tuple[int | None, list[tuple[int, int | None]]]:
    """The largest candidate micro-batch whose estimated ``key`` (the device peak on a GPU; the tensor
    bytes in a CPU dry run, whose peak is mostly the process's own baseline) fits ``capacity`` (binary
    search), and the estimates it looked at. None when even the smallest does not fit or the estimator
    fails."""
    lo, hi, best, seen = 0, len(CANDIDATES) - 1, None, []
    while lo <= hi:
        mid = (lo + hi) // 2
        e = estimate({**kwargs, "batch_size": CANDIDATES[mid]})
        seen.append((CANDIDATES[mid], e.get(key)))
        if "error" in e:
            print(f"auto-batch: {e['error']}", file=sys.stderr)
            return None, seen
        if e[key] <= capacity:
            best, lo = CANDIDATES[mid], mid + 1
        else:
            hi = mid - 1
    return best, seen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU and tiny sizes (no GPU needed)")
    p.add_argument("--configs", default="small,760m", help="comma list of: " + ", ".join(CONFIGS))
    p.add_argument("--batches", default="32,64", help="micro-batches of the fast-path sweep (small config)")
    p.add_argument("--auto-batch", action=argparse.BooleanOptionalAction, default=True,
                   help="let the estimator pick the largest micro-batch that fits (default on)")
    p.add_argument("--global-batch", type=int, default=0, help="samples per optimizer step (0: one micro-batch)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the best batch with compile_mode=reduce-overhead (CUDA graphs)")
    p.add_argument("--device-memory", type=float, default=0, help="GiB the auto batch may use (default: "
                   "90%% of the device; dry run: 0.02 of tensors)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=4, help="untimed steps first (torch.compile compiles here)")
    p.add_argument("--budget-s", type=float, default=330, help="skip what would start after this many seconds")
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 dense peak, TFLOP/s")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if c not in CONFIGS]
    if bad:
        p.error(f"--configs: unknown {', '.join(bad)} (known: {', '.join(CONFIGS)})")
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batches: expected integers separated by commas, got {args.batches!r}")
    return args


def plan(args: argparse.Namespace, device: str, capacity: int) -> list[tuple[str, dict[str, Any], int, str]]:
    """(config, kwargs, accum, label) of every run, in order; auto-batch estimates happen here."""
    runs: list[tuple[str, dict[str, Any], int, str]] = []
    for name in args.configs:
        base = {**(DRY if args.dry_run else CONFIGS)[name], "device": device}
        if name == "small":
            runs.append((name, {**base, **EAGER}, 1, "eager fp32"))
        batches = [base["batch_size"], *(args.batches if name == "small" else [])]
        if args.auto_batch:
            best, seen = auto_batch({**base, **FAST}, capacity, "tensor_bytes" if args.dry_run else "peak_bytes")
            print(f"auto-batch {name}: estimates " + ", ".join(
                f"{b}: {'?' if e is None else f'{e / 2**30:.1f}GiB'}" for b, e in seen) +
                f" -> {best} (fits {capacity / 2**30:.1f} GiB)", flush=True)
            if best:
                batches.append(best)
        for b in dict.fromkeys(batches):  # in order, no repeats
            accum = max(1, -(-args.global_batch // b)) if args.global_batch else 1
            runs.append((name, {**base, **FAST, "batch_size": b}, accum, "fast bf16"))
        if args.cuda_graphs and device == "cuda":
            b = max(dict.fromkeys(batches))
            runs.append((name, {**base, **FAST, "batch_size": b, "compile_mode": "reduce-overhead"}, 1,
                         "fast bf16 + CUDA graphs"))
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run to check the script on CPU", file=sys.stderr)
        return 2
    if args.auto_batch:
        from gpu_check import ensure_server_packages
        missing = ensure_server_packages() if not args.dry_run else None
        if missing:
            print(f"note: {missing} is missing (no ./.whl): the estimator may not import", file=sys.stderr)
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        args.steps, args.warmup = min(args.steps, 3), min(args.warmup, 1)
        args.batches = [b for b in args.batches if b <= 8]
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    total = torch.cuda.mem_get_info()[1] if device == "cuda" else 0
    gib = args.device_memory or (0.02 if args.dry_run else 0.9 * total / 2**30)
    peak = peak_tflops(name, args.peak_tflops)
    print(f"device: {name}  torch {torch.__version__}  peak bf16: {peak or 'unknown'} TFLOP/s", flush=True)
    rows: list[dict[str, Any]] = []
    for cfg_name, kwargs, accum, label in plan(args, device, int(gib * 2**30)):
        row: dict[str, Any] = {"config": cfg_name, "variant": label, "batch": kwargs["batch_size"], "accum": accum}
        if time.monotonic() - started > args.budget_s:
            row["skipped"] = f"time budget ({args.budget_s:.0f} s) spent"
        else:
            try:
                row.update(measure(kwargs, args.steps, args.warmup, accum))
                row["mfu"] = row["tflops"] / peak if peak else None
                row["estimate"] = estimate(kwargs) if accum == 1 else {"error": "not estimated with accumulation"}
            except torch.cuda.OutOfMemoryError as e:
                row["skipped"] = f"CUDA OOM: {str(e).splitlines()[0][:80]}"
                torch.cuda.empty_cache()
        rows.append(row)
        print(line(row), flush=True)
    table = render(rows, name, torch.__version__, peak, time.monotonic() - started)
    print(table)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_kernels.md").write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "peak_tflops": peak, "rows": rows}, indent=2, default=str))
    return 0


HEADER = (f"{'config':<7}{'variant':<25}{'batch':>9}{'samples/s':>11}{'step ms':>9}{'TFLOP/s':>9}{'MFU':>7}"
          f"{'max_alloc MiB':>14}{'est MiB':>9}{'est/act':>8}")


def line(r: dict[str, Any]) -> str:
    batch = f"{r['batch']}x{r['accum']}" if r["accum"] > 1 else str(r["batch"])
    if "skipped" in r:
        return f"{r['config']:<7}{r['variant']:<25}{batch:>9}  skipped: {r['skipped']}"
    alloc, e = r["max_memory_allocated"], r.get("estimate", {})
    tensors = e.get("tensor_bytes")
    ratio = f"{tensors / alloc:.2f}" if tensors and alloc else "n/a"
    mfu = format(r["mfu"], ".1%") if r.get("mfu") is not None else "n/a"
    return (f"{r['config']:<7}{r['variant']:<25}{batch:>9}{r['samples_per_s']:>11.1f}{r['step_ms']:>9.1f}"
            f"{r['tflops']:>9.2f}{mfu:>7}{(f'{alloc / 2**20:.0f}' if alloc else 'n/a'):>14}"
            f"{(f'{tensors / 2**20:.0f}' if tensors is not None else 'n/a'):>9}{ratio:>8}")


def render(rows: list[dict[str, Any]], device: str, torch_version: str, peak: float | None, wall: float) -> str:
    out = [f"device: {device}  torch {torch_version}  peak bf16: {peak or 'unknown'} TFLOP/s  wall {wall:.0f} s",
           HEADER, *map(line, rows)]
    for cfg in dict.fromkeys(r["config"] for r in rows):
        done = [r for r in rows if r["config"] == cfg and "skipped" not in r]
        eager = next((r for r in done if r["variant"] == "eager fp32"), None)
        best = max((r for r in done if r["variant"] != "eager fp32"), key=lambda r: r["samples_per_s"], default=None)
        if best:
            out.append(f"{cfg}: best {best['variant']} at batch {best['batch']}: {best['samples_per_s']:.1f} samples/s"
                       + (f", MFU {best['mfu']:.1%}" if best.get("mfu") is not None else "")
                       + (f", {best['samples_per_s'] / eager['samples_per_s']:.2f}x eager fp32" if eager else ""))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
