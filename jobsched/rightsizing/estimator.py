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
import functools
import importlib
import json
import os
import subprocess
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from jobsched.spec import TrainingJob

BREAKDOWN_KEYS = ("parameters", "gradients", "optimizer_state", "activations_peak", "baseline")
TRACED_STEPS = 2  # optimizer state appears in step 1; step 2 holds state, grads and activations
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every block up to 512 bytes


class EstimateError(ValueError):
    """The factory cannot be estimated; the message names the factory."""


@dataclass
class Estimate:
    peak_memory_bytes: int
    breakdown: dict[str, int]  # BREAKDOWN_KEYS; the values sum to peak_memory_bytes
    device: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        return cls(int(d["peak_memory_bytes"]), {k: int(d["breakdown"][k]) for k in BREAKDOWN_KEYS},
                   str(d["device"]), str(d["factory"]), dict(d.get("kwargs") or {}))


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


# -- live-byte tracking --------------------------------------------------------------------------

@functools.cache
def _tracker_class() -> type:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map_only
    from torch.utils.weak import WeakIdKeyDictionary

    class LiveBytes(TorchDispatchMode):
        """Live and peak bytes of the storages on one device type, updated after every op.
        A storage is counted when an op first returns it and uncounted when it is freed."""

        def __init__(self, device_type: str, block: int) -> None:
            super().__init__()
            self.device_type, self.block = device_type, block
            self.live = self.peak = 0
            self._seen: Any = WeakIdKeyDictionary()  # storage -> [bytes, key, weakref with callback]
            self.events: list[tuple[int, int]] = []  # (key, bytes) allocated, (key, -1) freed

        def size(self, st: torch.UntypedStorage) -> int:
            return -(-st.nbytes() // self.block) * self.block

        def add(self, t: torch.Tensor) -> None:
            if t.device.type != self.device_type:
                return
            st = t.untyped_storage()
            n, rec = self.size(st), self._seen.get(st)
            if rec is None:
                rec = [n, len(self.events)]
                rec.append(weakref.ref(st, functools.partial(self._freed, rec)))
                self._seen[st] = rec
                self.live += n
                self.events.append((rec[1], n))
            elif rec[0] != n:  # resized in place (out= ops): a realloc
                self.live += n - rec[0]
                rec[0] = n
                self.events += [(rec[1], -1), (rec[1], n)]
            self.peak = max(self.peak, self.live)

        def _freed(self, rec: list[Any], _ref: object) -> None:
            self.live -= rec[0]
            self.events.append((rec[1], -1))

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            tree_map_only(torch.Tensor, self.add, out)
            return out

    return LiveBytes


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    import torch
    from torch.utils._pytree import tree_leaves

    yield from (x for x in tree_leaves(obj) if isinstance(x, torch.Tensor))


def _persistent(model: Any, opt: torch.optim.Optimizer, tracker: Any) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state (each storage counted once)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    if hasattr(model, "parameters"):
        params += list(model.parameters())
    groups = {"parameters": params, "gradients": [p.grad for p in params if p.grad is not None],
              "optimizer_state": list(_tensors(list(opt.state.values())))}
    seen: dict[int, Any] = {}
    out = {}
    for key, tensors in groups.items():
        out[key] = 0
        for t in tensors:
            st = t.untyped_storage()
            if t.device.type == tracker.device_type and id(st) not in seen:
                seen[id(st)] = st
                out[key] += tracker.size(st)
    return out


def _match_foreach_default(opt: torch.optim.Optimizer, device_type: str) -> None:
    """Fake parameters are not plain Tensors, so torch.optim would not pick its foreach
    implementation on CUDA as a real run does; pin the real run's choice."""
    from torch.optim.optimizer import _get_foreach_kernels_supported_devices  # type: ignore[attr-defined]

    for group in opt.param_groups:
        if "foreach" in group and group["foreach"] is None and not group.get("fused"):
            group["foreach"] = device_type in _get_foreach_kernels_supported_devices()


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


def trace_peak(factory: str, kwargs: dict[str, Any], device: str) -> dict[str, int]:
    """Run the factory and TRACED_STEPS steps on fake tensors; breakdown without the baseline."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    fn = load_factory(factory)
    try:
        target = torch.device(device)
    except RuntimeError as e:
        raise EstimateError(f"device {device!r}: {e}") from None
    trace_on = target
    if target.type == "cuda" and not torch.cuda.is_available():
        # The autograd engine needs a real CUDA device even for fake CUDA tensors: trace the same
        # program on CPU and account it with the CUDA allocator's rules.
        warnings.warn("no CUDA device here: tracing on CPU with CUDA accounting", stacklevel=2)
        trace_on = torch.device("cpu")
    tracker = _tracker_class()(trace_on.type, CUDA_BLOCK if target.type == "cuda" else 1)
    with warnings.catch_warnings(), FakeTensorMode(allow_non_fake_inputs=True), tracker, trace_on:
        # copy.deepcopy of fake modules (nn.TransformerEncoder clones its layer) warns harmlessly
        warnings.filterwarnings("ignore", message="Accessing the data pointer of FakeTensor")
        model, opt, inputs, targets, loss_fn = unpack(factory, _guarded(factory, "raised", fn, **kwargs))
        for t in _tensors([list(model.parameters()) if hasattr(model, "parameters") else [],
                           list(model.buffers()) if hasattr(model, "buffers") else [],
                           inputs, targets, opt.param_groups, list(opt.state.values())]):
            tracker.add(t)
        _match_foreach_default(opt, target.type)
        _guarded(factory, "a training step failed on fake tensors", _steps, model=model, opt=opt,
                 inputs=inputs, targets=targets, loss_fn=loss_fn)
        persistent = _persistent(model, opt, tracker)
    return {**persistent, "activations_peak": max(0, tracker.peak - sum(persistent.values()))}


# -- public API ----------------------------------------------------------------------------------

def estimate_factory(factory: str, kwargs: dict[str, Any] | None = None, device: str = "cpu") -> Estimate:
    """Estimate the peak memory of one replica running ``factory(**kwargs)`` on ``device``."""
    from jobsched.rightsizing.baseline import baseline_bytes

    if kwargs is not None and not isinstance(kwargs, dict):
        raise EstimateError(f"factory {factory!r}: kwargs must be a JSON object (a dict)")
    kwargs = dict(kwargs or {})
    breakdown = trace_peak(factory, kwargs, device)
    breakdown["baseline"] = baseline_bytes(device)
    breakdown = {k: breakdown[k] for k in BREAKDOWN_KEYS}
    return Estimate(sum(breakdown.values()), breakdown, device, factory, kwargs)


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
