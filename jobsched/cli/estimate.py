"""``jobsched estimate``: the memory estimate of a job before it runs (no server needed).

Calls :mod:`jobsched.rightsizing.estimator` (imported lazily: it may import torch).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from jobsched.cli.output import Format, console, emit, fail, fmt_bytes


def _plain(result: Any) -> Any:
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


def _render(data: dict[str, Any]) -> None:
    """Peak memory, then the breakdown (parameters, gradients, optimizer state, activations...)."""
    c = console()
    peak = data.get("peak_memory_bytes")
    c.print(f"[bold]peak memory[/bold]  {fmt_bytes(peak)} ({peak} bytes)"
            + (f"  for {data['job']}" if data.get("job") else ""))
    for key in ("factory", "device", "kwargs"):
        if data.get(key) not in (None, {}, ""):
            value = data[key]
            c.print(f"{key:<12} {json.dumps(value) if isinstance(value, dict) else value}")
    _parts(data.get("breakdown") or {}, peak, "host" if data.get("device_peak_bytes") is not None else None)
    device_peak = data.get("device_peak_bytes")
    if device_peak is not None:
        c.print(f"[bold]device peak[/bold]  {fmt_bytes(device_peak)} ({device_peak} bytes) per GPU")
        _parts(data.get("device_breakdown") or {}, device_peak, "device")


def _parts(breakdown: dict[str, int], total: int | None, label: str | None) -> None:
    if not breakdown:
        return
    from jobsched.cli.output import _table

    t = _table(f"{label.upper()} PART" if label else "PART", "BYTES", "SHARE", right=("BYTES", "SHARE"))
    for part, n in breakdown.items():
        t.add_row(part, fmt_bytes(n), f"{100 * n / total:.0f}%" if total else "-")
    console().print(t)


def estimate(file: Path | None = typer.Argument(None, help="TrainingJob manifest (YAML) with "
                                                "spec.rightSizing.factory set."),
             factory: str | None = typer.Option(None, help="module:function returning "
                                                "(model, optimizer, batch, loss_fn)."),
             kwargs: str = typer.Option("{}", help="JSON object of keyword arguments for the factory."),
             device: str = typer.Option("cpu", help="With --factory: the device the job trains on "
                                        "(cpu or cuda; a manifest's is cuda when it requests GPUs)."),
             output: Format = typer.Option(Format.table, "--output", "-o", help="Output format.")) -> None:
    """Estimate the peak memory of a training step, from a manifest or a factory."""
    if (file is None) == (factory is None):
        fail("give either FILE or --factory module:function")
    try:
        kw = json.loads(kwargs)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        fail(f"--kwargs: not JSON: {e}")
    if not isinstance(kw, dict):
        fail("--kwargs: expected a JSON object")
    if device.split(":")[0] not in ("cpu", "cuda"):
        fail(f"--device: expected cpu or cuda, got {device!r}")
    if file is not None and kw:
        fail("--kwargs: only with --factory (a manifest sets spec.rightSizing.factoryKwargs)")
    from jobsched.rightsizing import estimator
    from jobsched.sdk.errors import InvalidSpec

    with _stages() as stage:
        try:
            if file is not None:
                from jobsched.sdk.manifest import load_manifest
                from jobsched.spec.job import TrainingJob

                stage(f"validating {file}")
                _, manifest = load_manifest(TrainingJob, file)
                stage("importing PyTorch")
                estimator.load_torch()
                stage(f"tracing one training step of {file} (fake tensors: no data, no real memory)")
                result = estimator.estimate_manifest(manifest)
            else:
                stage("importing PyTorch")
                estimator.load_torch()
                stage(f"tracing one training step of {factory} on {device} (fake tensors: no data, no real memory)")
                result = estimator.estimate_factory_dict(str(factory), kw, device)
        except (InvalidSpec, ValueError) as e:
            stage(None)
            fail(str(e))
    data = _plain(result)
    emit(data, output) if output is not Format.table else _render(data)


@contextmanager
def _stages() -> Iterator[Callable[[str | None], None]]:
    """A spinner on stderr naming the current stage (on a terminal only: piped output stays clean)."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    status = console(stderr=True).status("estimating")
    status.start()

    def stage(text: str | None) -> None:
        status.stop() if text is None else status.update(f"estimate: {text}")

    try:
        yield stage
    finally:
        status.stop()


def register(app: typer.Typer) -> None:
    app.command()(estimate)
