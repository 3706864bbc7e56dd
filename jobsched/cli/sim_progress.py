"""How far ``jobsched simulate`` got, on stderr: on a terminal a rich progress display (an overall
bar with the ETA, and a line per running run: policy, seed, pods placed), otherwise plain lines (one
per finished run, with the same figures and the ETA) for logs and CI. stdout keeps the report alone."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover - numpy and the core load with the command, not with --help
    from jobsched.sim.suite import Tick


def _eta(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 60}m{s % 60:02d}s"


class SimProgress:
    """Call with a text line (a stage) or, from packing runs, with a :class:`Tick`. ``runs`` (the
    number of runs to come) turns on the overall bar and ETA."""

    def __init__(self, console: Any = None) -> None:
        self._console = console
        self._bar: Any = None
        self._overall: Any = None
        self._lines: dict[tuple[str, int], Any] = {}
        self._frac: dict[tuple[str, int], float] = {}
        self._runs = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> SimProgress:
        console = self._console
        if console is None and sys.stderr.isatty():
            from rich.console import Console

            console = Console(stderr=True)
        if console is not None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[placed]}"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)
            self._bar.start()
            self._overall = self._bar.add_task("simulating", total=None, placed="")
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def expect(self, runs: int) -> None:
        self._runs = runs
        if self._bar is not None:
            self._bar.update(self._overall, total=float(runs), description=f"packing: {runs} runs")

    def __call__(self, item: str | Tick) -> None:
        if isinstance(item, str):
            if self._bar is None:
                typer.echo(item, err=True)
            else:
                self._bar.update(self._overall, description=item)
            return
        self._tick(item)

    def _tick(self, t: Tick) -> None:
        key = (t.policy, t.seed)
        self._frac[key] = 1.0 if t.done else t.step / max(t.total, 1)
        done = sum(self._frac.values())
        finished = sum(1 for f in self._frac.values() if f >= 1.0)
        elapsed = time.monotonic() - self._t0
        eta = elapsed * (self._runs - done) / done if self._runs and done > 0 else None
        if self._bar is None:
            if t.done:
                where = f" ({finished}/{self._runs} runs" + (f", ETA {_eta(eta)})" if eta is not None else ")")
                typer.echo(f"packing: {t.policy} seed {t.seed}: {t.placed} pods placed of {t.total} "
                           f"in {t.seconds:.1f} s{where}", err=True)
            return
        self._bar.update(self._overall, completed=done, placed=f"{finished}/{self._runs} runs")
        line = self._lines.get(key)
        if t.done:
            if line is not None:
                self._bar.remove_task(line)
                del self._lines[key]
            return
        desc = f"  {t.policy} seed {t.seed}"
        if line is None:
            self._lines[key] = self._bar.add_task(desc, total=float(t.total), completed=float(t.step),
                                                  placed=f"{t.placed} pods placed")
        else:
            self._bar.update(line, completed=float(t.step), placed=f"{t.placed} pods placed")
