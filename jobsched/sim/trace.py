"""Read cluster traces: openb-style node and pod CSVs (Alibaba cluster-trace-gpu-v2023) and
jobsched's own TrainingJob manifests, into a :class:`NodeTable` and a columnar :class:`PodTrace`."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from jobsched.core.fragmentation import Shape, TargetWorkload
from jobsched.core.nodes import NodeTable
from jobsched.spec.node import GPU_MODEL_LABEL
from jobsched.spec.resources import Resources

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
MIB = 1 << 20
ARRIVAL_ANNOTATION = "jobsched.io/sim-arrival"  # seconds since the trace start
DURATION_ANNOTATION = "jobsched.io/sim-duration"  # run time in seconds


class TraceError(ValueError):
    """A trace file is missing or malformed; the message names the file, row and column."""


@dataclass
class PodTrace:
    names: list[str]
    cpu: I64
    mem: I64  # bytes
    gpus: I64
    milli: I64  # per-GPU share, 1000 for whole GPUs, 0 without GPUs
    models: list[tuple[str, ...]]
    created: F64
    duration: F64  # +inf: runs to the end of the trace
    replicas: I64
    placement: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def request(self, i: int) -> Resources:
        return Resources(int(self.cpu[i]), int(self.mem[i]), int(self.gpus[i]), int(self.milli[i]))

    def gpu_milli_total(self) -> I64:
        """milli-GPU each pod (all replicas) asks for."""
        return self.gpus * self.milli * self.replicas

    def workload(self, popularity: float = 1.0, step: int = 10, cpu_pods: bool = False) -> TargetWorkload:
        """The target workload of the whole list (see :meth:`TargetWorkload.from_shapes`)."""
        counts: Counter[Shape] = Counter()
        for i in range(len(self)):
            models = self.models[i] if self.gpus[i] else ()
            counts[(int(self.cpu[i]), int(self.gpus[i]), int(self.milli[i]), models)] += int(self.replicas[i])
        return TargetWorkload.from_shapes(dict(counts), popularity, step, cpu_pods)


def _rows(path: str | Path, what: str, required: tuple[str, ...]) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{what} file {str(p)!r} does not exist")
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in required if c not in cols]
        if missing:
            raise TraceError(f"{what} file {str(p)!r} lacks column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise TraceError(f"{what} file {str(p)!r} has no rows")
    return rows


def _int(row: dict[str, str], col: str, where: str, default: int | None = None) -> int:
    v = (row.get(col) or "").strip()
    if not v and default is not None:
        return default
    try:
        out = int(float(v))
    except ValueError:
        raise TraceError(f"{where}: column {col!r} is not a number: {v!r}") from None
    if out < 0:
        raise TraceError(f"{where}: column {col!r} is negative: {v!r}")
    return out


def _float(row: dict[str, str], col: str) -> float | None:
    v = (row.get(col) or "").strip()
    try:
        return float(v) if v else None
    except ValueError:
        return None


def load_nodes(path: str | Path) -> NodeTable:
    rows = _rows(path, "nodes", ("cpu_milli", "memory_mib", "gpu"))
    names, cpu, mem, gpus, models, labels, price = [], [], [], [], [], [], []
    for n, r in enumerate(rows):
        where = f"nodes file {str(path)!r} row {n + 2}"
        names.append(r.get("sn") or r.get("name") or f"node-{n}")
        cpu.append(_int(r, "cpu_milli", where))
        mem.append(_int(r, "memory_mib", where) * MIB)
        g = _int(r, "gpu", where)
        gpus.append(g)
        model = (r.get("model") or "").strip() if g else ""
        models.append(model)
        labels.append({GPU_MODEL_LABEL: model} if model else {})
        price.append(_float(r, "price") or 0.0)
    return NodeTable.from_arrays(names, cpu, mem, gpus, models, labels, price)


def load_pods(path: str | Path) -> PodTrace:
    p = Path(path)
    if p.suffix in (".yaml", ".yml") or p.is_dir():
        return _load_jobs(p)
    rows = _rows(p, "pods", ("cpu_milli", "memory_mib", "num_gpu"))
    n = len(rows)
    cpu, mem, gpus, milli = (np.zeros(n, dtype=np.int64) for _ in range(4))
    created, duration = np.zeros(n), np.full(n, math.inf)
    replicas = np.ones(n, dtype=np.int64)
    names, models = [], []
    for i, r in enumerate(rows):
        where = f"pods file {str(p)!r} row {i + 2}"
        names.append(r.get("name") or f"pod-{i}")
        cpu[i] = _int(r, "cpu_milli", where)
        mem[i] = _int(r, "memory_mib", where) * MIB
        gpus[i] = _int(r, "num_gpu", where)
        share = _int(r, "gpu_milli", where, default=1000)
        if share > 1000:
            raise TraceError(f"{where}: column 'gpu_milli' must be at most 1000, got {share}")
        if gpus[i] > 1 and share < 1000:
            raise TraceError(f"{where}: a GPU share (gpu_milli {share}) needs num_gpu 1, got {gpus[i]}")
        milli[i] = (share or 1000) if gpus[i] else 0
        models.append(tuple(m for m in (r.get("gpu_spec") or "").split("|") if m))
        replicas[i] = max(_int(r, "replicas", where, default=1), 1)
        start = _float(r, "creation_time")
        created[i] = start or 0.0
        end = _float(r, "deletion_time")
        began = _float(r, "scheduled_time") or start
        if end is not None and began is not None and end >= began:
            duration[i] = end - began
    return PodTrace(names, cpu, mem, gpus, milli, models, created, duration, replicas, ["Pack"] * n)


def _load_jobs(p: Path) -> PodTrace:
    import yaml

    from jobsched.spec.job import TrainingJob

    files = sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    if not p.exists():
        raise TraceError(f"pods file {str(p)!r} does not exist")
    jobs: list[TrainingJob] = []
    for f in files:
        for k, doc in enumerate(yaml.safe_load_all(f.read_text())):
            if doc is None:
                continue
            try:
                jobs.append(TrainingJob.model_validate(doc))
            except ValueError as e:
                raise TraceError(f"pods file {str(f)!r} document {k + 1}: {e}") from None
    if not jobs:
        raise TraceError(f"pods file {str(p)!r} holds no TrainingJob")
    reqs = [j.requests() for j in jobs]
    ann = [j.metadata.annotations for j in jobs]
    return PodTrace(
        names=[j.key for j in jobs],
        cpu=np.array([r.cpu_milli for r in reqs], dtype=np.int64),
        mem=np.array([r.memory for r in reqs], dtype=np.int64),
        gpus=np.array([r.gpus for r in reqs], dtype=np.int64),
        milli=np.array([r.gpu_milli for r in reqs], dtype=np.int64),
        models=[tuple(j.spec.gpu_models) for j in jobs],
        created=np.array([float(a.get(ARRIVAL_ANNOTATION, 0)) for a in ann]),
        duration=np.array([float(a.get(DURATION_ANNOTATION, math.inf)) for a in ann]),
        replicas=np.array([j.spec.replicas for j in jobs], dtype=np.int64),
        placement=[j.spec.placement for j in jobs],
    )
