"""GPU check of issue #12 (one GPU, at most 8 minutes): prints one table, and writes it to
``$OUT/gpu_check.md`` when OUT is set.

    python benchmarks/gpu_check.py                 # on a GPU machine, from the repository root
    python benchmarks/gpu_check.py --dry-run       # no GPU: part 2's estimates only, parts 1/3/4 planned
    python benchmarks/gpu_check.py --parts 2 --models gru-adamw,kernel-transformer-bf16

1. An Auto GPU job of the transformer kernel (``--device cuda --fast --steps 60``, ``nvidia.com/gpu: 1``,
   512Mi declared) succeeds on its first attempt on the embedded server.
2. The estimator's ``device_peak_bytes`` against the measured device peak (``max_memory_reserved`` plus
   the device memory outside the allocator, ``total - free - reserved``) after 3 real steps, each model
   in a fresh process: per-model error, median and worst.
3. Two small jobs share one GPU (``jobsched.io/gpu-milli: 500``, ``jobsched.io/gpu-memory``) under
   enforced caps (``JOBSCHED_GPU_MEMORY_LIMIT``, applied by the workers runtime) and both succeed.
4. A job forced into CUDA OOM (a GPU-memory request below its need) is resized and succeeds.

Parts 3 and 4 use features that may not be there yet: they report ``SKIP (feature missing: ...)``.
Needs torch, numpy, psutil, prometheus-client, typer, rich, httpx; pydantic, fastapi, uvicorn,
kubernetes and PyYAML are installed from ``./.whl`` (``pip install --no-index --find-links .whl``)
when missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1 << 20
Z = "jobsched.rightsizing.zoo:"
K = "kernels.{}:factory"
# (name, factory, kwargs): zoo configurations and the built-in kernels (compile off: not traced)
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("mlp-wide-adam", Z + "mlp", {"width": 3072, "depth": 4, "batch": 512}),
    ("cnn-bn-adam-b64", Z + "cnn", {"channels": 32, "blocks": 3, "image": 32, "batch": 64}),
    ("resnet18-sgdm-b64", Z + "resnet", {"image": 64, "batch": 64}),
    ("lstm-adam", Z + "rnn", {"cell": "lstm", "hidden": 256, "layers": 2, "seq": 64, "batch": 32}),
    ("gru-adamw", Z + "rnn", {"cell": "gru", "hidden": 512, "layers": 2, "seq": 64, "batch": 32,
                              "optimizer": "adamw"}),
    ("transformer-small-adamw", Z + "transformer", {"d_model": 256, "layers": 4, "seq": 128, "batch": 16}),
    ("transformer-wide-adam", Z + "transformer", {"d_model": 1024, "heads": 8, "layers": 4, "seq": 256,
                                                  "batch": 16, "optimizer": "adam"}),
    ("kernel-transformer-bf16", K.format("transformer"), {"device": "cuda", "fast": True, "compile": False}),
    ("kernel-transformer-fp32", K.format("transformer"), {"device": "cuda"}),
    ("kernel-cnn-bf16", K.format("cnn"), {"device": "cuda", "fast": True, "compile": False}),
    ("kernel-mlp", K.format("mlp"), {"device": "cuda"}),
]
SERVER_PACKAGES = {"pydantic": "pydantic", "fastapi": "fastapi", "uvicorn": "uvicorn",
                   "kubernetes": "kubernetes", "yaml": "PyYAML"}

Row = tuple[str, str, str, str]  # part, check, result, detail


def fmt(n: float | None) -> str:
    return "-" if n is None else f"{n / MiB:,.1f} MiB"


# -- part 2: the estimator's device figure against the measured peak -------------------------------

def measure(factory: str, kwargs: dict[str, Any], timeout: float) -> dict[str, Any]:
    """3 real steps in a fresh process (jobsched.rightsizing.baseline.measure_peak on cuda)."""
    argv = [sys.executable, "-m", "jobsched.rightsizing.baseline", "--factory", factory,
            "--kwargs", json.dumps(kwargs), "--device", "cuda"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def part2(models: list[tuple[str, str, dict[str, Any]]], dry: bool) -> list[Row]:
    from jobsched.rightsizing.baseline import cuda_baseline
    from jobsched.rightsizing.estimator import estimate_factory

    rows: list[Row] = []
    base = cuda_baseline()
    ctx = ", ".join(f"{k} {fmt(v)}" for k, v in base.context.items())
    rows.append(("2", "CUDA baseline", "measured" if base.measured else "fallback",
                 f"host {fmt(base.host_bytes)}; context {ctx}"))
    errors: list[float] = []
    for name, factory, kwargs in models:
        try:
            est = estimate_factory(factory, kwargs, "cuda")
        except Exception as e:  # one model's failure is a row, not the end of the check
            rows.append(("2", name, "FAIL", f"estimate: {type(e).__name__}: {str(e)[:160]}"))
            continue
        dev = est.device_breakdown or {}
        tensors = sum(dev.get(k, 0) for k in ("parameters", "gradients", "optimizer_state", "activations_peak"))
        detail = (f"estimate {fmt(est.device_peak_bytes)} (tensors {fmt(tensors)}, cuBLAS workspace "
                  f"{fmt(dev.get('cublas_workspace'))}, reserve "
                  f"{fmt(dev.get('allocator_reserve'))}, context {fmt(dev.get('cuda_context'))}); "
                  f"host {fmt(est.host_peak_bytes)}")
        if dry:
            rows.append(("2", name, "ESTIMATED", detail))
            continue
        try:
            real = measure(factory, kwargs, timeout=150)
        except Exception as e:
            rows.append(("2", name, "FAIL", f"{detail}; measure: {str(e)[:160]}"))
            continue
        assert est.device_peak_bytes is not None
        err = (est.device_peak_bytes - real["peak_bytes"]) / real["peak_bytes"]
        errors.append(err)
        rows.append(("2", name, f"{100 * err:+.1f}%",
                     f"{detail}; measured {fmt(real['peak_bytes'])} (allocated {fmt(real['peak_allocated_bytes'])}, "
                     f"reserved {fmt(real['peak_reserved_bytes'])}, context {fmt(real['context_bytes'])})"))
    if errors:
        med, worst = statistics.median(abs(e) for e in errors), max(abs(e) for e in errors)
        ok = med <= 0.05 and worst <= 0.10 and len(errors) >= 8
        rows.append(("2", "device error |est-meas|/meas", "PASS" if ok else "FAIL",
                     f"median {100 * med:.1f}%, worst {100 * worst:.1f}% on {len(errors)} models "
                     "(goal: median <= 5%, worst <= 10%, >= 8 models)"))
    return rows


# -- the embedded server (parts 1, 3, 4) -----------------------------------------------------------

def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, **extra}


def ensure_server_packages() -> str | None:
    """Install missing server packages from ./.whl; the name of one still missing, else None."""
    missing = [pip for mod, pip in SERVER_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    wheels = ROOT / ".whl"
    if missing and wheels.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                        str(wheels), *missing], check=False, timeout=180)
        importlib.invalidate_caches()
    return next((pip for mod, pip in SERVER_PACKAGES.items() if importlib.util.find_spec(mod) is None), None)


def missing_features() -> dict[str, str]:
    """The GPU-memory features parts 3 and 4 need, by part: what is missing ("" when nothing)."""
    def mentions(folder: str, text: str) -> bool:
        return any(text in p.read_text() for p in (ROOT / folder).rglob("*.py"))

    gaps = [what for folder, text, what in (
        ("jobsched/spec", "jobsched.io/gpu-memory", "the jobsched.io/gpu-memory resource in the spec"),
        ("workers", "JOBSCHED_GPU_MEMORY_LIMIT", "JOBSCHED_GPU_MEMORY_LIMIT in the workers runtime"),
        ("jobsched/server", "JOBSCHED_GPU_MEMORY_LIMIT", "JOBSCHED_GPU_MEMORY_LIMIT set by the scheduler (server/gpu_env.py)"),
    ) if not mentions(folder, text)]
    return {"3": "; ".join(gaps), "4": "; ".join(gaps)}


def job(name: str, argv: list[str], requests: dict[str, Any], auto: bool = True, retries: int = 2,
        **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {**spec, "maxRetries": retries, "memoryPolicy": "Auto" if auto else "Fixed",
                     "template": {"command": argv, "workingDir": str(ROOT), "resources": {"requests": requests}}}}


def train(*flags: str) -> list[str]:
    return [sys.executable, "-m", "workers.train", *flags]


class Server:
    def __init__(self, home: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.home, self.url = home, f"http://127.0.0.1:{self.port}"
        self.log = open(home.parent / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
                                      "--port", str(self.port)], env=child_env(), cwd=ROOT,
                                     stdout=self.log, stderr=self.log)
        import httpx

        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up: {(home.parent / 'server.log').read_text()[-500:]}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        from jobsched.sdk.client import Client

        self.client = Client(url=self.url, home=home)

    def run(self, manifests: list[dict[str, Any]], timeout: float) -> list[Any]:
        for m in manifests:
            self.client.submit(m)
        return [self.client.wait(m["metadata"]["name"], timeout=timeout) for m in manifests]

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def attempts(st: Any) -> str:
    return "; ".join(f"#{a.index} {a.reason} mem {fmt(a.resources.requests.get('memory'))} "
                     f"gpu-mem {fmt(a.resources.requests.get('jobsched.io/gpu-memory'))} peak {fmt(a.peak_memory_bytes)}"
                     for a in st.attempts)


def part1(srv: Server) -> list[Row]:
    argv = train("--kernel", "transformer", "--device", "cuda", "--fast", "--steps", "60")
    (st,) = srv.run([job("auto-gpu", argv, {"nvidia.com/gpu": 1, "memory": "512Mi"})], timeout=300)
    ok = st.phase.value == "Succeeded" and len(st.attempts) == 1
    return [("1", "Auto GPU job, first attempt", "PASS" if ok else "FAIL",
             f"{st.phase.value}; estimated host {fmt(st.sizing.estimated_memory)}; {attempts(st)}")]


def part3(srv: Server) -> list[Row]:
    argv = train("--kernel", "mlp", "--device", "cuda", "--steps", "400")
    requests = {"nvidia.com/gpu": 1, "jobsched.io/gpu-milli": 500, "jobsched.io/gpu-memory": "4Gi", "memory": "512Mi"}
    a, b = srv.run([job(f"share-{i}", argv, requests) for i in "ab"], timeout=300)
    ok = all(s.phase.value == "Succeeded" and len(s.attempts) == 1 for s in (a, b))
    x, y = a.attempts[-1], b.attempts[-1]
    overlap = bool(x.started_at and y.started_at and x.finished_at and y.finished_at
                   and x.started_at < y.finished_at and y.started_at < x.finished_at)
    same_gpu = x.node == y.node
    return [("3", "two jobs share one GPU", "PASS" if ok and overlap and same_gpu else "FAIL",
             f"{a.phase.value}/{b.phase.value}; ran together: {overlap}; same node: {same_gpu}; "
             f"a: {attempts(a)}; b: {attempts(b)}")]


def part4(srv: Server) -> list[Row]:
    argv = train("--kernel", "transformer", "--device", "cuda", "--batch-size", "256", "--steps", "30")
    requests = {"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "256Mi", "memory": "4Gi"}
    # gpuSharing Auto: the 256Mi request becomes a memory-sized share whose cap the runtime enforces
    (st,) = srv.run([job("cuda-oom", argv, requests, auto=False, retries=3, gpuSharing="Auto")], timeout=360)
    first = st.attempts[0] if st.attempts else None
    grew = len(st.attempts) >= 2 and (st.attempts[1].resources.requests.get("jobsched.io/gpu-memory", 0)
                                      > (first.resources.requests.get("jobsched.io/gpu-memory", 0) if first else 0))
    ok = st.phase.value == "Succeeded" and first is not None and first.reason != "Completed" and grew
    return [("4", "CUDA OOM resized", "PASS" if ok else "FAIL", f"{st.phase.value}; {attempts(st)}")]


PLANS = {"1": "Auto job: workers.train --kernel transformer --device cuda --fast --steps 60, nvidia.com/gpu 1, 512Mi",
         "3": "2 x workers.train --kernel mlp --device cuda: gpu-milli 500 + gpu-memory 4Gi each, one GPU",
         "4": "transformer --batch-size 256 (~400 MiB) under gpu-memory 256Mi (Fixed): CUDA OOM, then a larger GPU-memory request"}


def server_parts(parts: list[str], dry: bool) -> list[Row]:
    wanted = [p for p in ("1", "3", "4") if p in parts]
    if not wanted:
        return []
    missing_pkg = None if dry else ensure_server_packages()
    gaps = missing_features()
    rows: list[Row] = []
    todo: list[tuple[str, Callable[[Server], list[Row]]]] = []
    for p, fn in (("1", part1), ("3", part3), ("4", part4)):
        if p not in wanted:
            continue
        if gaps.get(p):
            rows.append((p, PLANS[p], f"SKIP (feature missing: {gaps[p]})", ""))
        elif dry:
            rows.append((p, PLANS[p], "PLANNED", "dry run: no GPU"))
        elif missing_pkg:
            rows.append((p, PLANS[p], f"SKIP (package missing: {missing_pkg})", ""))
        else:
            todo.append((p, fn))
    if todo:
        tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        (tmp / "home").mkdir()
        srv = Server(tmp / "home")
        try:
            for p, fn in todo:
                try:
                    rows += fn(srv)
                except Exception as e:
                    rows.append((p, PLANS[p], "FAIL", f"{type(e).__name__}: {str(e)[:200]}"))
        finally:
            srv.close()
    return rows


# -- the table -------------------------------------------------------------------------------------

def table(rows: list[Row], header: str) -> str:
    lines = [header, "", "| part | check | result | detail |", "|---|---|---|---|"]
    lines += [f"| {p} | {c} | {r} | {d} |" for p, c, r, d in sorted(rows, key=lambda r: r[0])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: part 2's estimates, parts 1/3/4 planned")
    ap.add_argument("--parts", default="1,2,3,4")
    ap.add_argument("--models", default="", help="comma-separated subset of part 2's models")
    a = ap.parse_args(argv)
    import torch

    parts = a.parts.split(",")
    names = [n for n in a.models.split(",") if n]
    unknown = set(names) - {m[0] for m in MODELS}
    if unknown:
        print(f"--models: unknown {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not a.dry_run and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry-run", file=sys.stderr)
        return 2
    os.environ.setdefault("JOBSCHED_HOME", tempfile.mkdtemp(prefix="gpu-check-home-"))  # the baseline cache
    t0 = time.monotonic()
    rows: list[Row] = []
    if "2" in parts:
        rows += part2([m for m in MODELS if not names or m[0] in names], a.dry_run)
    rows += server_parts(parts, a.dry_run)
    device = "dry run, no GPU" if a.dry_run else torch.cuda.get_device_name()
    out = table(rows, f"GPU check ({device}; torch {torch.__version__}; {time.monotonic() - t0:.0f} s)")
    print(out)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.md").write_text(out)
    return 1 if any(r[2] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
