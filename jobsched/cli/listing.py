"""The jobs list: its columns and cells (one definition for both renderers) and the fast path of
``jobsched list``, which renders the same table without typer, rich, httpx or pydantic.

Start-up is most of what ``jobsched list`` costs: importing httpx, pydantic (and the API models),
typer and rich takes ~0.5 s of CPU, the request a few ms. :func:`fast_list` handles the plain
forms (``list [-n NS] [--phase P] [--queue Q] [-o table|wide]``) with the standard library and
falls back to the full command for anything else (help, JSON, errors, autostart).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from jobsched.spec.units import format_bytes

PHASE_COLOR = {"Succeeded": "green", "Failed": "red", "Cancelled": "yellow", "Running": "cyan"}
_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36"}


def _get(d: dict[str, Any] | None, snake: str) -> Any:
    """A field by its camelCase (API) or snake_case name."""
    if not d:
        return None
    if snake in d:
        return d[snake]
    head, *rest = snake.split("_")
    return d.get(head + "".join(p.title() for p in rest))


def fmt_bytes(n: int | None) -> str:
    return format_bytes(n) if n else "-"


def fmt_age(t: float | None, now: float | None = None) -> str:
    if t is None:
        return "-"
    s = max(0, int((now or time.time()) - t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def fmt_cost(cost: float | None) -> str:
    return f"${cost:.4f}" if cost else "-"


def columns(wide: bool) -> list[str]:
    mem = ["NODE", "MEMORY REQUEST", "MEMORY LIMIT"] if wide else ["MEMORY"]
    return ["NAME", "NAMESPACE", "QUEUE", "PHASE", "ATTEMPTS", *mem, "COST", "AGE", "REASON"]


def row(j: dict[str, Any], wide: bool, now: float) -> list[str]:
    """One job (the API's JSON) as table cells; PHASE is the 4th cell."""
    atts = j.get("attempts") or []
    if isinstance(atts, int):  # a JobSummary (GET /v1/jobs): counts and the latest attempt's figures
        count, mem, limit, nodes = atts, j.get("memory"), _get(j, "memory_limit"), j.get("nodes") or []
    else:  # a JobStatus
        last = atts[-1] if atts else None
        res = (last or {}).get("resources") or {}
        count = len(atts)
        mem = (res.get("requests") or {}).get("memory") if last else _get(j.get("sizing"), "chosen_memory")
        limit = (res.get("limits") or {}).get("memory") if last else None
        nodes = (last.get("nodes") or ([last["node"]] if last.get("node") else [])) if last else []
    out = [j["name"], j.get("namespace", "default"), j.get("queue", "default"), j.get("phase", ""),
           str(count), fmt_bytes(mem)]
    if wide:
        out[5:5] = [",".join(dict.fromkeys(nodes)) or "-"]
        out.append(fmt_bytes(limit))
    return [*out, fmt_cost(j.get("cost")), fmt_age(_get(j, "created_at"), now), j.get("reason") or ""]


def plain_table(cols: Sequence[str], rows: Sequence[Sequence[str]], color: bool) -> str:
    """The table as rich draws it with the CLI's style (no box, two spaces between columns, bold
    header, coloured phase) for a stream of unlimited width."""
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]

    def paint(text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color and code else text

    lines = ["  ".join(paint(c.ljust(w), "1") for c, w in zip(cols, widths, strict=True))]
    for r in rows:
        cells = [paint(v.ljust(w), _ANSI.get(PHASE_COLOR.get(v, "")) if i == 3 else None)
                 for i, (v, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n"


def _parse(argv: list[str]) -> tuple[dict[str, str], bool] | None:
    """``list`` options the fast path understands; None for anything else."""
    names = {"-n": "namespace", "--namespace": "namespace", "--phase": "phase", "--queue": "queue",
             "-o": "output", "--output": "output"}
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
        if key not in names or (not eq and i + 1 >= len(argv)):
            return None
        if not eq:
            i, value = i + 1, argv[i + 1]
        opts[names[key]] = value
        i += 1
    output = opts.pop("output", "table")
    if output not in ("table", "wide"):
        return None
    return opts, output == "wide"


def fast_list(argv: list[str]) -> bool:
    """Print the jobs table for ``jobsched list ARGS`` if the fast path can; True if it did."""
    parsed = _parse(argv)
    if parsed is None:
        return False
    params, wide = parsed
    from jobsched.sdk.fast import get_json

    data = get_json("/v1/jobs", params)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return False
    tty = sys.stdout.isatty()
    cols, now = columns(wide), time.time()
    rows = [row(j, wide, now) for j in data["items"]]
    text = plain_table(cols, rows, color=False)
    if tty:
        width = os.get_terminal_size().columns or sys.maxsize  # 0: a pty that does not say
        if max(len(ln) for ln in text.splitlines()) > width:
            return False  # wider than the terminal: rich wraps the columns
        if not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
            text = plain_table(cols, rows, color=True)
    sys.stdout.write(text)
    sys.stdout.flush()
    return True
