"""This machine's GPUs, read through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

:func:`inventory` returns how many GPUs there are, their model and the memory of each; when there
are none it says why (package missing, no driver, no device), for ``jobsched nodes`` and the server
log. The model name is written the way NVIDIA GPU Feature Discovery labels Kubernetes nodes
(``NVIDIA H100 80GB HBM3`` -> ``NVIDIA-H100-80GB-HBM3``), so ``spec.gpuModels`` reads the same on
both backends. A host with mixed GPUs reports the most common model and the smallest memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jobsched.local")


@dataclass(frozen=True)
class GpuInventory:
    count: int = 0
    model: str = ""
    memory: int = 0  # bytes per GPU
    note: str = ""  # why none was found

    def describe(self) -> str:
        if not self.count:
            return f"no GPU: {self.note}"
        return f"{self.count} x {self.model} ({self.memory / 2**30:.1f} GiB each)"


def product_name(name: str | bytes) -> str:
    text = name.decode() if isinstance(name, bytes) else str(name)
    return "-".join(text.split())


def inventory() -> GpuInventory:
    """The GPUs NVML sees; never raises."""
    try:
        import pynvml
    except ImportError:
        return GpuInventory(note="NVML unavailable: the nvidia-ml-py package is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        return GpuInventory(note=f"NVML unavailable: {_err(e)}")
    try:
        n = int(pynvml.nvmlDeviceGetCount())
        if n == 0:
            return GpuInventory(note="NVML found no GPU")
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
        models = [product_name(pynvml.nvmlDeviceGetName(h)) for h in handles]
        mems = [int(pynvml.nvmlDeviceGetMemoryInfo(h).total) for h in handles]
        model = Counter(models).most_common(1)[0][0]
        if len(set(models)) > 1 or len(set(mems)) > 1:
            log.warning("mixed GPUs on this host (%s): reported as %s with the smallest memory",
                        ", ".join(sorted(set(models))), model)
        return GpuInventory(n, model, min(mems))
    except Exception as e:
        return GpuInventory(note=f"NVML error: {_err(e)}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: S110 - shutting down a library that failed is best effort
            pass


def _err(e: Any) -> str:
    return f"{type(e).__name__}: {e}".strip().rstrip(":")
