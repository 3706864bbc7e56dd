"""Rendering for the CLI (rich tables, JSON, YAML) and the mapping of SDK errors to exit codes.

Exit codes: 0 ok; 1 the job ended Failed or Cancelled (under ``--wait``); 2 invalid input (the
message names the field path); 3 server unreachable or unauthorized; 4 forbidden (the token's role
or namespaces do not allow it).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from jobsched.cli.listing import PHASE_COLOR as _PHASE_STYLE  # one table, two renderers (listing.py)
from jobsched.cli.listing import fmt_age as fmt_age
from jobsched.cli.listing import fmt_bytes as fmt_bytes
from jobsched.cli.listing import fmt_cost as fmt_cost

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.table import Table

    from jobsched.spec.api import EventInfo, JobStatus, JobSummary, NodeStatus, QueueStatus

EXIT_OK, EXIT_JOB_FAILED, EXIT_INVALID, EXIT_UNREACHABLE, EXIT_FORBIDDEN = 0, 1, 2, 3, 4


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class ListFormat(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"


def console(stderr: bool = False) -> Console:
    """A rich console; piped output is not squeezed to 80 columns (greppable rows, whole names)."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 250
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def fail(message: str, code: int = EXIT_INVALID, hint: str | None = None) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    raise typer.Exit(code)


UNREACHABLE_HINT = ("start one with `jobsched server` (or `jobsched server --port PORT`), or point "
                    "JOBSCHED_URL at a running server")
NOT_FOUND_HINT = "`jobsched list` shows the jobs of every namespace (`-n NS` selects one)"


@contextmanager
def sdk_errors() -> Iterator[None]:
    """Turn SDK exceptions into an ``error: ...`` line on stderr and the documented exit code."""
    from jobsched.sdk.errors import (
        ConflictError,
        Forbidden,
        InvalidSpec,
        JobschedError,
        NotFoundError,
        ServerUnreachable,
        Unauthorized,
    )

    try:
        yield
    except NotFoundError as e:
        fail(str(e), EXIT_INVALID, NOT_FOUND_HINT if str(e).startswith("job ") else None)
    except (InvalidSpec, ConflictError) as e:
        fail(str(e), EXIT_INVALID)
    except ServerUnreachable as e:
        fail(str(e), EXIT_UNREACHABLE, UNREACHABLE_HINT)
    except Unauthorized as e:
        fail(str(e), EXIT_UNREACHABLE)
    except Forbidden as e:
        fail(str(e), EXIT_FORBIDDEN)
    except JobschedError as e:
        fail(str(e), EXIT_JOB_FAILED)


def emit(data: Any, fmt: Format) -> None:
    """Print ``data`` (a pydantic model, or a list of them, or plain data) as JSON or YAML."""
    def plain(x: Any) -> Any:
        if hasattr(x, "model_dump"):
            return x.model_dump(mode="json")
        if isinstance(x, list | tuple):
            return [plain(i) for i in x]
        return x

    obj = plain(data)
    if fmt is Format.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")



# Free-text columns wrap at these widths instead of stretching the table (events: ~170 columns).
CAPS = {"MESSAGE": 72, "TIMELINE": 60, "OUTPUTS": 48, "QUOTA": 40, "USAGE": 40, "ALLOCATABLE": 48,
        "ALLOCATED": 48}


def _table(*columns: str, title: str | None = None, keep: int = 0, right: tuple[str, ...] = ()) -> Table:
    """The CLI's one table style: borderless, bold header, a bold title on the left; the first
    column is never wrapped or cut (names get copy-pasted); free-text columns are capped (CAPS) and
    wrap; ``right``: columns of figures, right-aligned."""
    from rich.table import Table

    t = Table(title=title, box=None, header_style="bold", pad_edge=False, title_justify="left",
              title_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, no_wrap=i == 0, min_width=keep if i == 0 else None, max_width=CAPS.get(c),
                     overflow="fold", justify="right" if c in right else "left")
    return t


def fmt_resources(values: dict[str, Any], milli: bool) -> str:
    """``cpu=2, memory=4Gi, nvidia.com/gpu=1``; ``milli``: cpu is in millicores (usage vectors)."""
    from jobsched.spec.quantity import format_bytes, format_cpu

    out = []
    for k, v in values.items():
        if k == "memory" and isinstance(v, int):
            v = format_bytes(v)
        elif k == "cpu" and milli and isinstance(v, int):
            v = format_cpu(v)
        out.append(f"{k}={v}")
    return ", ".join(out)


def _phase(p: str) -> str:
    style = _PHASE_STYLE.get(p)
    return f"[{style}]{p}[/{style}]" if style else p


def jobs_table(jobs: Sequence[JobSummary] | Sequence[JobStatus], wide: bool = False) -> None:
    """The jobs; ``wide`` (``-o wide``) adds the node, memory request and limit of the last attempt.
    The cells come from :mod:`jobsched.cli.listing`, which also draws them on ``list``'s fast path."""
    from jobsched.cli.listing import columns, row

    t = _table(*columns(wide), keep=max((len(j.name) for j in jobs), default=4))
    now = time.time()
    for j in jobs:
        cells = row(j.model_dump(mode="json"), wide, now)
        cells[3] = _phase(cells[3])
        t.add_row(*cells)
    console().print(t)


def fmt_peak(peak: int | None, limit: int | None) -> str:
    """A cgroup's peak can pass its limit (page cache is charged, then reclaimed): say so."""
    return f"{fmt_bytes(peak)} (≥ limit)" if peak and limit and peak > limit else fmt_bytes(peak)


def attempts_table(job: JobStatus) -> Table:
    t = _table("ATTEMPT", "REQUEST", "LIMIT", "MODE", "PEAK", "NODE", "EXIT", "REASON", title="Attempts")
    for a in job.attempts:
        t.add_row(str(a.index), fmt_bytes(a.resources.requests.get("memory")),
                  fmt_bytes(a.resources.limits.get("memory")), a.memory_mode or "-",
                  fmt_peak(a.peak_memory_bytes, a.resources.limits.get("memory")), a.node or "-",
                  "-" if a.exit_code is None else str(a.exit_code), a.reason or "")
    return t


def timelines_table(job: JobStatus) -> Table | None:
    """Per attempt: a sparkline of the peak replica's memory (scaled to its limit) and what its
    shape says (plateau, growing, spike), when the limit was hit."""
    rows = [a for a in job.attempts if a.memory_timeline is not None]
    if not rows:
        return None
    t = _table("ATTEMPT", "MEMORY (0..limit)", "TIMELINE", title="Memory timeline")
    for a in rows:
        tl = a.memory_timeline
        assert tl is not None
        t.add_row(str(a.index), tl.sparkline, tl.text)
    return t


def events_table(events: Sequence[EventInfo]) -> Table:
    t = _table("AGE", "TYPE", "REASON", "MESSAGE", title="Events")
    now = time.time()
    for e in events:
        typ = f"[yellow]{e.type}[/yellow]" if e.type == "Warning" else e.type
        t.add_row(fmt_age(e.time, now), typ, e.reason, e.message)
    return t


def _chosen(job: JobStatus) -> str | None:
    """The last attempt's memory request (what a resize after an OOM chose), else the sizing's."""
    last = job.attempts[-1].resources.requests.get("memory") if job.attempts else None
    mem = last or job.sizing.chosen_memory
    return fmt_bytes(mem) if mem else None


def job_detail(job: JobStatus) -> None:
    c = console()
    c.print(f"[bold]{job.namespace}/{job.name}[/bold]  {_phase(job.phase.value)}"
            + (f"  ({job.reason})" if job.reason else ""))
    fields = [("queue", job.queue), ("priority", job.priority), ("replicas", job.replicas),
              ("message", job.message), ("age", fmt_age(job.created_at)),
              ("memory declared", fmt_bytes(job.sizing.declared_memory) if job.sizing.declared_memory
               else None),
              ("memory estimate", fmt_bytes(job.sizing.estimated_memory) if job.sizing.estimated_memory
               else None),
              ("memory history", fmt_bytes(job.sizing.recommended_memory) if job.sizing.recommended_memory
               else None),
              ("memory default", fmt_bytes(job.sizing.default_memory) if job.sizing.default_memory
               else None),
              ("memory (chosen)", _chosen(job)), ("sizing", job.sizing.why),
              ("cost", fmt_cost(job.cost) if job.cost else None)]
    for k, v in fields:
        if v not in (None, ""):
            c.print(f"  {k:<16}{v}")
    if job.attempts:
        c.print(attempts_table(job))
        tt = timelines_table(job)
        if tt is not None:
            c.print(tt)
    if job.events:
        c.print(events_table(job.events))


def queues_table(queues: Sequence[QueueStatus]) -> None:
    t = _table("QUEUE", "WEIGHT", "QUOTA", "USAGE", "DEFAULT MEMORY", "PENDING", "RUNNING",
               keep=max((len(q.name) for q in queues), default=5))
    for q in queues:
        quota = fmt_resources(q.quota, milli=False) or "unlimited"
        usage = fmt_resources(q.usage, milli=True)
        t.add_row(q.name, f"{q.weight:g}", quota, usage or "-", fmt_bytes(q.default_memory),
                  str(q.pending), str(q.running))
    console().print(t)


def nodes_table(nodes: Sequence[NodeStatus]) -> None:
    t = _table("NODE", "GPU", "ALLOCATABLE", "ALLOCATED", "ENFORCEMENT", "SCHEDULABLE",
               keep=max((len(n.name) for n in nodes), default=4))
    for n in nodes:
        alloc = fmt_resources(n.allocatable, milli=False)
        used_v = dict(n.allocated)
        milli = used_v.pop("jobsched.io/gpu-milli", None)
        if milli is not None and used_v.get("nvidia.com/gpu"):
            used_v["nvidia.com/gpu"] = f"{milli / 1000:g}"  # type: ignore[assignment]  # shares add up
        used = fmt_resources(used_v, milli=True)
        if any(n.held.values()):  # room other schedulers' pods hold for now (Kubernetes)
            from jobsched.spec.quantity import cpu_milli

            held = {k: cpu_milli(v) if k == "cpu" else v for k, v in n.held.items() if v and v != "0m"}
            used = f"{used or '-'}; held by others: {fmt_resources(held, milli=True)}"
        t.add_row(n.name, gpu_cell(n), alloc, used or "-", n.enforcement or "-",
                  "no" if n.unschedulable else "yes")
    console().print(t)


def gpu_cell(n: NodeStatus) -> str:
    """``A100-40GB 40Gi`` (model, memory per GPU), or why none was found."""
    if n.gpu_model or n.gpu_memory:
        return " ".join(x for x in (n.gpu_model or "?", fmt_bytes(n.gpu_memory) if n.gpu_memory else "") if x)
    return f"none ({n.gpu_note})" if n.gpu_note else "-"
