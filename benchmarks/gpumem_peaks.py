"""Regenerate jobsched/sim/data/zoo_device_peaks.json: the estimator's device (CUDA) peak of every
model of the estimator zoo, for the simulator's GPU-memory mode (docs/simulator.md).

Each configuration is estimated with ``jobsched.rightsizing.estimator.estimate_factory(..., device="cuda")``:
two training steps traced on fake tensors with the CUDA allocator's accounting (no GPU needed), plus the
estimator's CUDA-context baseline (measured where a GPU is present, else its documented fallback).
The configurations are ``jobsched.rightsizing.zoo.CONFIGS`` (CPU-sized, 0.5-1.5 GiB on a device) and
``GPU_SIZED`` below: the same zoo factories at larger sizes, so that the table spans the 1-14 GiB that
GPU-sharing pods of the openb trace are given (50-900 milli of 16-32 GiB GPUs).

    python benchmarks/gpumem_peaks.py [--out PATH]     # about a minute on 2 cores, no GPU needed
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

from jobsched.rightsizing.zoo import CONFIGS, Config

_Z = "jobsched.rightsizing.zoo:"
GPU_SIZED = [
    Config("mlp-wide-adam-b4096", _Z + "mlp", {"width": 4096, "depth": 6, "batch": 4096}),
    Config("cnn-bn-adam-b512", _Z + "cnn", {"channels": 64, "blocks": 3, "image": 32, "batch": 512}),
    Config("cnn-bn-sgdm-128px", _Z + "cnn",
           {"channels": 32, "blocks": 4, "image": 128, "batch": 128, "optimizer": "sgd-momentum"}),
    Config("cnn-plain-adam-224px", _Z + "cnn",
           {"channels": 32, "blocks": 5, "image": 224, "batch": 64, "batchnorm": False}),
    Config("cnn-bn-adam-224px-b128", _Z + "cnn", {"channels": 32, "blocks": 5, "image": 224, "batch": 128}),
    Config("lstm-large-b256", _Z + "rnn", {"cell": "lstm", "hidden": 1024, "layers": 3, "seq": 128, "batch": 256}),
    Config("lstm-large-adam", _Z + "rnn", {"cell": "lstm", "hidden": 1024, "layers": 3, "seq": 128, "batch": 64}),
    Config("gru-large-adamw", _Z + "rnn",
           {"cell": "gru", "hidden": 1024, "layers": 2, "seq": 256, "batch": 64, "optimizer": "adamw"}),
    Config("transformer-base-adamw", _Z + "transformer",
           {"d_model": 768, "heads": 12, "layers": 6, "seq": 256, "batch": 16, "vocab": 32000}),
    Config("transformer-base-b24", _Z + "transformer",
           {"d_model": 768, "heads": 12, "layers": 12, "seq": 256, "batch": 24, "vocab": 32000}),
    Config("transformer-wide-long", _Z + "transformer",
           {"d_model": 1024, "heads": 16, "layers": 8, "seq": 512, "batch": 8, "vocab": 32000}),
    Config("logreg-wide-adam", _Z + "logreg",
           {"features": 800_000, "classes": 500, "batch": 1024, "optimizer": "adam"}),
]
OUT = Path(__file__).resolve().parents[1] / "jobsched" / "sim" / "data" / "zoo_device_peaks.json"


def main(argv: list[str] | None = None) -> int:
    import torch

    from jobsched.rightsizing.estimator import estimate_factory

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for c in [*CONFIGS, *GPU_SIZED]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = estimate_factory(c.factory, dict(c.kwargs), device="cuda")
        rows.append({"name": c.name, "factory": c.factory, "kwargs": c.kwargs,
                     "device_peak_bytes": est.peak_memory_bytes, "breakdown": est.breakdown})
        print(f"{c.name:28s} {est.peak_memory_bytes / 2**30:7.2f} GiB  ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)
    data = {
        "description": "Estimated device (CUDA) peak of one training replica per zoo configuration: traced "
                       "tensors (fake tensors, CUDA allocator accounting) + the estimator's CUDA-context "
                       "baseline. Regenerate with benchmarks/gpumem_peaks.py.",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "cuda_available": torch.cuda.is_available()},
        "configs": rows,
    }
    Path(a.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {a.out} ({len(rows)} configurations)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
