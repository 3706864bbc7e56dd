"""``jobsched estimate``: the memory estimate of a job before it runs (no server needed).

Calls :mod:`jobsched.rightsizing.estimator` (imported lazily: it may import torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from jobsched.cli.output import Format, console, emit, fail, fmt_bytes


def _plain(result: Any) -> Any:
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


def _render(result: Any) -> None:
    data = _plain(result)
    if not isinstance(data, dict):
        console().print(str(data))
        return
    from rich.table import Table

    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key, value in data.items():
        if isinstance(value, int) and not isinstance(value, bool) and ("memory" in key or "bytes" in key):
            value = f"{fmt_bytes(value)} ({value} bytes)"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        t.add_row(str(key), str(value))
    console().print(t)


def estimate(file: Path | None = typer.Argument(None, help="TrainingJob manifest (YAML) with "
                                                "spec.rightSizing.factory set."),
             factory: str | None = typer.Option(None, help="module:function returning "
                                                "(model, optimizer, batch, loss_fn)."),
             kwargs: str = typer.Option("{}", help="JSON object of keyword arguments for the factory."),
             output: Format = typer.Option(Format.table, "--output", "-o", help="Output format.")) -> None:
    """Estimate the peak memory of a training step, from a manifest or a factory."""
    if (file is None) == (factory is None):
        fail("give either FILE or --factory module:function")
    from jobsched.rightsizing import estimator
    from jobsched.sdk.errors import InvalidSpec

    try:
        if file is not None:
            from jobsched.sdk.manifest import load_manifest
            from jobsched.spec.job import TrainingJob

            _, manifest = load_manifest(TrainingJob, file)
            result = estimator.estimate_manifest(manifest)
        else:
            try:
                kw = json.loads(kwargs)
            except json.JSONDecodeError as e:
                fail(f"--kwargs: not JSON: {e}")
            if not isinstance(kw, dict):
                fail("--kwargs: expected a JSON object")
            result = estimator.estimate_factory_dict(factory, kw)
    except (InvalidSpec, ValueError) as e:
        fail(str(e))
    emit(_plain(result), output) if output is not Format.table else _render(result)


def register(app: typer.Typer) -> None:
    app.command()(estimate)
