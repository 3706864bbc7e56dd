"""Pre-launch peak-memory estimate of one training replica (method: docs/estimator.md).

A factory ``module:function`` returns ``(model, optimizer, (inputs, targets), loss_fn)``. We run it
and two full training steps under torch's FakeTensorMode (no real data is allocated), count the
live bytes of every tensor storage on the target device after each op (the idea of PyTorch's
``MemTracker``), and add the runtime's own measured baseline (:mod:`jobsched.rightsizing.baseline`).

Import-light: torch is imported inside functions only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from jobsched.spec import TrainingJob

BREAKDOWN_KEYS = ("parameters", "gradients", "optimizer_state", "activations_peak", "baseline")
TRACED_STEPS = 2  # optimizer state appears in step 1; step 2 holds state, grads and activations
DEVICE_KEYS = ("parameters", "gradients", "optimizer_state", "activations_peak", "cublas_workspace",
               "allocator_reserve", "cuda_context")


class EstimateError(ValueError):
    """The factory cannot be estimated; the message names the factory."""


@dataclass
class Estimate:
    """One replica's peak. ``peak_memory_bytes`` is the host (container) memory and equals
    ``host_peak_bytes``; a CUDA job also has ``device_peak_bytes`` (per GPU: tensors, the caching
    allocator's reserve, the CUDA context) and its ``device_breakdown`` (DEVICE_KEYS)."""

    peak_memory_bytes: int
    breakdown: dict[str, int]  # BREAKDOWN_KEYS of the host; the values sum to peak_memory_bytes
    device: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    host_peak_bytes: int = -1  # -1: the same as peak_memory_bytes
    device_peak_bytes: int | None = None
    device_breakdown: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.host_peak_bytes < 0:
            self.host_peak_bytes = self.peak_memory_bytes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        dev = d.get("device_breakdown")
        return cls(int(d["peak_memory_bytes"]), {k: int(d["breakdown"][k]) for k in BREAKDOWN_KEYS},
                   str(d["device"]), str(d["factory"]), dict(d.get("kwargs") or {}),
                   int(d.get("host_peak_bytes", d["peak_memory_bytes"])),
                   None if d.get("device_peak_bytes") is None else int(d["device_peak_bytes"]),
                   None if dev is None else {k: int(dev[k]) for k in DEVICE_KEYS})


# -- the factory contract, shared with the real-step runner in baseline.py ----------------------

def load_factory(factory: str) -> Callable[..., Any]:
    module_name, sep, attr = factory.partition(":")
    if not sep or not module_name or not attr:
        raise EstimateError(f"factory {factory!r}: expected 'module:function'")
    if os.getcwd() not in sys.path:  # user factories next to the job, as `python -m` would see them
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while importing user code
        raise EstimateError(f"factory {factory!r}: cannot import {module_name!r}: {e}") from e
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise EstimateError(f"factory {factory!r}: module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise EstimateError(f"factory {factory!r}: {attr!r} is not callable")
    return fn  # type: ignore[no-any-return]


def unpack(factory: str, out: Any) -> tuple[Any, Any, Any, Any, Callable[..., Any]]:
    """Check the factory's return value: ``(model, optimizer, (inputs, targets), loss_fn)``."""
    import torch

    shape = "(model, optimizer, (inputs, targets), loss_fn)"
    if not isinstance(out, tuple | list) or len(out) != 4:
        raise EstimateError(f"factory {factory!r}: must return {shape}, got {type(out).__name__}")
    model, opt, batch, loss_fn = out
    if not callable(model):
        raise EstimateError(f"factory {factory!r}: model is not callable")
    if not isinstance(opt, torch.optim.Optimizer):
        raise EstimateError(f"factory {factory!r}: optimizer is a {type(opt).__name__}, "
                            "not a torch.optim.Optimizer")
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise EstimateError(f"factory {factory!r}: batch must be (inputs, targets)")
    if not callable(loss_fn):
        raise EstimateError(f"factory {factory!r}: loss_fn is not callable")
    return model, opt, batch[0], batch[1], loss_fn


def train_step(model: Any, opt: torch.optim.Optimizer, inputs: Any, targets: Any,
               loss_fn: Callable[..., Any]) -> None:
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    opt.step()


# -- the trace -----------------------------------------------------------------------------------

def _guarded(factory: str, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except EstimateError:
        raise
    except Exception as e:
        raise EstimateError(f"factory {factory!r}: {what}: {type(e).__name__}: {e}") from e


def _steps(model: Any, opt: Any, inputs: Any, targets: Any, loss_fn: Callable[..., Any]) -> None:
    for _ in range(TRACED_STEPS):
        train_step(model, opt, inputs, targets, loss_fn)


@dataclass
class Trace:
    """What one traced run saw. ``tensors[dev]``: parameters, gradients, optimizer_state and
    activations_peak on device type ``dev`` (no baseline); for a CUDA job also the device's
    allocation ``events`` and the ``libraries`` its step loads (jobsched.rightsizing.cuda)."""

    tensors: dict[str, dict[str, int]]
    events: list[tuple[int, int]] = field(default_factory=list)
    libraries: frozenset[str] = frozenset()
    first_seen: dict[str, int] = field(default_factory=dict)


def trace(factory: str, kwargs: dict[str, Any], device: str) -> Trace:
    """Run the factory and TRACED_STEPS steps on fake tensors. A CUDA job runs on the stand-in
    device (jobsched.rightsizing.emulate), with or without a GPU here."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from jobsched.rightsizing import cuda, emulate, tracking

    fn = load_factory(factory)
    try:
        target = torch.device(device)
    except RuntimeError as e:
        raise EstimateError(f"device {device!r}: {e}") from None
    on_cuda = target.type == "cuda"
    dev = emulate.STANDIN if on_cuda else target.type
    blocks = {dev: cuda.MIN_BLOCK, "cpu": 1} if on_cuda else {dev: 1}
    tracker = tracking.tracker_class()(blocks, event_device=dev if on_cuda else None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        stack.enter_context(tracker)
        redirect = stack.enter_context(emulate.cuda_on_standin()) if on_cuda else None
        stack.enter_context(torch.device(dev))
        # copy.deepcopy of fake modules (nn.TransformerEncoder clones its layer) warns harmlessly
        warnings.filterwarnings("ignore", message="Accessing the data pointer of FakeTensor")
        model, opt, inputs, targets, loss_fn = unpack(factory, _guarded(factory, "raised", fn, **kwargs))
        for t in tracking.tensors([list(model.parameters()) if hasattr(model, "parameters") else [],
                                   list(model.buffers()) if hasattr(model, "buffers") else [],
                                   inputs, targets, opt.param_groups, list(opt.state.values())]):
            tracker.add(t)
        tracking.match_foreach_default(opt, target.type)
        _guarded(factory, "a training step failed on fake tensors", _steps, model=model, opt=opt,
                 inputs=inputs, targets=targets, loss_fn=loss_fn)
        out = {}
        for d in blocks:
            persistent = tracking.persistent(model, opt, tracker, d)
            out["device" if on_cuda and d == dev else d] = {
                **persistent, "activations_peak": max(0, tracker.peak[d] - sum(persistent.values()))}
    if not on_cuda:
        return Trace(out)
    libs = cuda.libraries(tracker.first_seen, redirect.extra_libraries if redirect else ())
    return Trace(out, tracker.events, libs, tracker.first_seen)


def trace_peak(factory: str, kwargs: dict[str, Any], device: str) -> dict[str, int]:
    """The breakdown without the baseline: of the device's tensors (a CUDA job: the CUDA device's,
    blocks rounded to 512 bytes)."""
    t = trace(factory, kwargs, device)
    return t.tensors["device" if torch_device_type(device) == "cuda" else torch_device_type(device)]


def load_torch() -> None:
    """Import PyTorch now (seconds on a cold start), so a caller can show that as its own stage."""
    import torch  # noqa: F401


def torch_device_type(device: str) -> str:
    return device.split(":")[0]


# -- public API ----------------------------------------------------------------------------------

def estimate_factory(factory: str, kwargs: dict[str, Any] | None = None, device: str = "cpu") -> Estimate:
    """Estimate the peak memory of one replica running ``factory(**kwargs)`` on ``device``."""
    from jobsched.rightsizing.baseline import baseline_bytes, cuda_baseline
    from jobsched.rightsizing.cuda import context_bytes, replay, with_workspace

    if kwargs is not None and not isinstance(kwargs, dict):
        raise EstimateError(f"factory {factory!r}: kwargs must be a JSON object (a dict)")
    kwargs = dict(kwargs or {})
    t = trace(factory, kwargs, device)
    if torch_device_type(device) != "cuda":
        host = {**t.tensors[torch_device_type(device)], "baseline": baseline_bytes(device)}
        host = {k: host[k] for k in BREAKDOWN_KEYS}
        return Estimate(sum(host.values()), host, device, factory, kwargs)
    base = cuda_baseline()
    host = {**t.tensors["cpu"], "baseline": base.host_bytes}
    host = {k: host[k] for k in BREAKDOWN_KEYS}
    persistent = {k: t.tensors["device"][k] for k in ("parameters", "gradients", "optimizer_state")}
    workspace = base.cublas_workspace if "cublas" in t.libraries else 0
    alloc = replay(with_workspace(t.events, t.first_seen, workspace))
    tensors = max(alloc.peak_allocated, sum(persistent.values()) + workspace)
    dev = {**persistent, "activations_peak": tensors - sum(persistent.values()) - workspace,
           "cublas_workspace": workspace,
           "allocator_reserve": max(alloc.peak_reserved, tensors) - tensors,
           "cuda_context": context_bytes(t.libraries, base.context)}
    return Estimate(sum(host.values()), host, device, factory, kwargs, sum(host.values()),
                    sum(dev.values()), {k: dev[k] for k in DEVICE_KEYS})


def job_device(job: TrainingJob) -> str:
    return "cuda" if job.requests().gpus > 0 else "cpu"


def names_factory(job: TrainingJob) -> bool:
    """Whether :func:`job_factory` has something to trace, without importing the runtime or torch:
    spec.rightSizing.factory is set, or the command is a PyTorch workers.train command."""
    argv = job.spec.template.argv()
    return bool(job.spec.right_sizing.factory) or (
        _is_workers_train(argv) and _flag(argv, "--framework") in (None, "torch"))


def job_factory(job: TrainingJob) -> tuple[str, dict[str, Any]] | None:
    """The factory of a job: spec.rightSizing.factory, else the workers.train runtime's."""
    rs = job.spec.right_sizing
    if rs.factory:
        return rs.factory, dict(rs.factory_kwargs)
    argv = job.spec.template.argv()
    if not _is_workers_train(argv) or _flag(argv, "--framework") not in (None, "torch"):
        return None  # not the runtime, or an MXNet job: no PyTorch program to trace
    try:
        from workers.train import factory_for_argv
    except ImportError as e:
        raise EstimateError(f"cannot estimate a workers.train command: {e}") from e
    try:
        factory, kwargs = factory_for_argv(argv)
    except ValueError as e:
        raise EstimateError(f"spec.template.command/args: {e}") from e
    return str(factory), dict(kwargs or {})


def _flag(argv: Sequence[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _is_workers_train(argv: Sequence[str]) -> bool:
    if any(a == "workers.train" and i > 0 and argv[i - 1] == "-m" for i, a in enumerate(argv)):
        return True
    return any(a.replace("\\", "/").endswith("workers/train.py") for a in argv)


def estimate_job(job: TrainingJob, *, in_subprocess: bool = False, timeout: float = 300.0) -> Estimate | None:
    """Estimate one replica of ``job``; None when the job names no factory and is not a
    workers.train command. ``in_subprocess`` keeps user code out of this process."""
    found = job_factory(job)
    if found is None:
        return None
    factory, kwargs = found
    if in_subprocess:
        return estimate_in_subprocess(factory, kwargs, job_device(job), timeout,
                                      cwd=job.spec.template.working_dir)
    return estimate_factory(factory, kwargs, job_device(job))


def estimate_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``jobsched estimate FILE -o json``: validate a TrainingJob manifest and estimate it."""
    from pydantic import ValidationError

    from jobsched.spec import TrainingJob
    from jobsched.spec.errors import spec_error_from

    try:
        job = TrainingJob.model_validate(manifest)
    except ValidationError as e:
        raise spec_error_from(e) from None
    est = estimate_job(job)
    if est is None:
        raise EstimateError("spec.rightSizing.factory: not set, and the replica command is not a "
                            "workers.train command, so the job's memory cannot be estimated")
    return {**est.to_dict(), "job": job.key}


def estimate_factory_dict(factory: str, kwargs: dict[str, Any] | None = None,
                          device: str = "cpu") -> dict[str, Any]:
    """``jobsched estimate --factory module:function --kwargs JSON``."""
    return estimate_factory(factory, kwargs, device).to_dict()


def estimate_in_subprocess(factory: str, kwargs: dict[str, Any] | None = None, device: str = "cpu",
                           timeout: float = 300.0, cwd: str | None = None) -> Estimate:
    """The same estimate in a fresh ``python -m jobsched.rightsizing.estimator`` child, so that
    user code never runs in the calling (scheduler) process."""
    argv = [sys.executable, "-m", "jobsched.rightsizing.estimator", "--factory", factory,
            "--kwargs", json.dumps(kwargs or {}), "--device", device]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # so the child imports this jobsched
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        raise EstimateError(f"factory {factory!r}: estimate timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise EstimateError(tail if proc.returncode == 2 else
                            f"factory {factory!r}: estimator exited with {proc.returncode}: {tail}")
    try:
        return Estimate.from_dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, KeyError, IndexError) as e:
        raise EstimateError(f"factory {factory!r}: unreadable estimator output: {e}") from e


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobsched.rightsizing.estimator")
    p.add_argument("--factory", required=True, help="module:function")
    p.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    try:
        kwargs = json.loads(a.kwargs)
        with contextlib.redirect_stdout(sys.stderr):  # user prints must not corrupt the JSON
            est = estimate_factory(a.factory, kwargs, a.device)
    except json.JSONDecodeError as e:
        print(f"--kwargs: not valid JSON: {e}", file=sys.stderr)
        return 2
    except EstimateError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(json.dumps(est.to_dict()))
    return 0


if __name__ == "__main__":
    from jobsched.rightsizing.estimator import main as _main  # the canonical module, not __main__

    sys.exit(_main())
