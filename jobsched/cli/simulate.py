"""``jobsched simulate``: the trace-driven simulator (packing, replay, memory and gpumem modes).

Heavy imports (numpy, the core, matplotlib) stay inside the command so ``jobsched --help`` is fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

MODES = ("packing", "replay", "memory", "gpumem")
OUTPUTS = ("text", "json")


def _bad(option: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{option}'")


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to the main Typer app."""

    @app.command("simulate")
    def simulate(
        nodes: str = typer.Option(None, "--nodes", help="Node list CSV (sn,cpu_milli,memory_mib,gpu,model)."),
        pods: str = typer.Option(None, "--pods", help="Pod list CSV (openb columns) or TrainingJob YAML file/dir."),
        policy: list[str] = typer.Option(None, "--policy", help="Placement policy; repeat for several. "
                                         "Default: all in packing mode, jobsched otherwise; in gpumem mode "
                                         "one policy scores all three sharing models (default: bestfit, fgd, "
                                         "jobsched)."),
        mode: str = typer.Option("packing", "--mode", help="packing | replay | memory | gpumem."),
        seeds: int = typer.Option(10, "--seeds", help="Number of seeds (42, 43, ...)."),
        seed_start: int = typer.Option(42, "--seed-start", help="First seed."),
        inflate: float = typer.Option(1.3, "--inflate", help="Packing: arrive GPU requests up to this x capacity."),
        output: str = typer.Option("text", "-o", "--output", help="text | json."),
        plot: str = typer.Option(None, "--plot", help="Write a PNG figure (packing mode)."),
        jobs: int = typer.Option(1, "--jobs", help="Worker processes for packing runs."),
        nodes_scale: int = typer.Option(1, "--nodes-scale", help="Packing: replicate the cluster (and the pod "
                                        "list) this many times, e.g. 10 or 50 for 12k or 60k openb nodes."),
        cycle_interval: float = typer.Option(0.0, "--cycle-interval", help="Replay: seconds between cycles "
                                             "(0: a cycle at every event)."),
        horizon: float = typer.Option(None, "--horizon", help="Replay: stop at this simulated time (s)."),
        margin: float = typer.Option(0.15, "--margin", help="gpumem: headroom over the predicted device "
                                     "peak when sizing a share."),
        peak_error: float = typer.Option(0.10, "--peak-error", help="gpumem: true device peak = predicted x "
                                         "(1 + e), e uniform in [-this, +this]."),
        gpuspec: float = typer.Option(None, "--gpuspec", help="Restrict this fraction (0..1) of the GPU pods "
                                      "to some GPU models first (jobsched.sim.variants, seed 0)."),
    ) -> None:
        """Replay a cluster trace against placement policies and report allocation, delays and cost."""
        if mode not in MODES:
            raise _bad("--mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if output not in OUTPUTS:
            raise _bad("--output", f"must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if seeds < 1 or seeds > 1000:
            raise _bad("--seeds", f"must be between 1 and 1000, got {seeds}")
        if not math.isfinite(inflate) or not 0 < inflate <= 10:
            raise _bad("--inflate", f"must be a number in (0, 10], got {inflate}")
        if jobs < 1 or jobs > 64:
            raise _bad("--jobs", f"must be between 1 and 64, got {jobs}")
        if nodes_scale < 1 or nodes_scale > 1000:
            raise _bad("--nodes-scale", f"must be between 1 and 1000, got {nodes_scale}")
        if nodes_scale > 1 and mode != "packing":
            raise _bad("--nodes-scale", f"applies to packing mode only, not {mode}")
        if not math.isfinite(cycle_interval) or cycle_interval < 0:
            raise _bad("--cycle-interval", f"must be >= 0, got {cycle_interval}")
        if not math.isfinite(margin) or not 0 <= margin <= 10:
            raise _bad("--margin", f"must be a number in [0, 10], got {margin}")
        if not math.isfinite(peak_error) or not 0 <= peak_error < 1:
            raise _bad("--peak-error", f"must be a number in [0, 1), got {peak_error}")
        seed_list = list(range(seed_start, seed_start + seeds))
        if gpuspec is not None:
            pods = _gpuspec_pods(nodes, pods, gpuspec, mode)
        from jobsched.cli.sim_progress import SimProgress

        global _progress
        _progress = SimProgress()
        with _progress:
            if mode == "memory":
                report = _memory(pods, seed_list)
            elif mode == "gpumem":
                report = _gpumem(nodes, pods, policy, seed_list, margin, peak_error)
            else:
                report = _trace_modes(nodes, pods, policy, mode, seed_list, inflate, jobs, cycle_interval,
                                      horizon, nodes_scale)
        if plot and mode == "packing":
            from jobsched.sim.plot import plot_allocation

            plot_allocation({Path(str(pods)).stem: report}, plot)
            report["plot"] = plot
        if output == "json":
            typer.echo(json.dumps(report, indent=1))
        else:
            _print_text(report)


def _trace_modes(nodes: str | None, pods: str | None, policy: list[str] | None, mode: str, seeds: list[int],
                 inflate: float, jobs: int, cycle_interval: float, horizon: float | None,
                 nodes_scale: int = 1) -> dict[str, Any]:
    from jobsched.sim.trace import TraceError, load_nodes, load_pods

    _check_inputs(nodes, pods, policy, mode)
    try:
        if mode == "packing":
            from jobsched.sim.suite import DEFAULT_POLICIES, packing_report

            policies = policy or DEFAULT_POLICIES
            _progress.expect(len(policies) * len(seeds))
            return packing_report(str(nodes), str(pods), policies, seeds, inflate, jobs,
                                  progress=_progress, ticks=_progress, nodes_scale=nodes_scale)
        from jobsched.sim.replay import run_replay

        table, trace = load_nodes(str(nodes)), load_pods(str(pods))
        runs = {}
        for p in policy or ["jobsched"]:
            _progress(f"replay: {p}: {len(trace)} pods")
            runs[p] = run_replay(table, trace, p, seeds[0], cycle_interval=cycle_interval, horizon=horizon)
            _progress(f"replay: {p}: done in {runs[p]['seconds']} s")
        return {"mode": "replay", "nodes": nodes, "pods": pods, "seed": seeds[0], "policies": runs}
    except TraceError as e:
        opt = "--nodes" if str(e).startswith("nodes") else "--pods"
        raise _bad(opt, str(e)) from None
    except ValueError as e:
        raise _bad("--pods", str(e)) from None


_progress: Any = None  # the SimProgress of the running command


def _gpuspec_pods(nodes: str | None, pods: str | None, fraction: float, mode: str) -> str:
    """Write the gpuspec variant of ``pods`` to a temporary CSV and return its path."""
    import tempfile

    from jobsched.sim.trace import TraceError, load_nodes, load_pods
    from jobsched.sim.variants import gpuspec_variant, write_pods_csv

    if not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise _bad("--gpuspec", f"must be a number in [0, 1], got {fraction}")
    _check_inputs(nodes, pods, None, mode)
    try:
        variant = gpuspec_variant(load_pods(str(pods)), load_nodes(str(nodes)), fraction)
    except TraceError as e:
        raise _bad("--nodes" if str(e).startswith("nodes") else "--pods", str(e)) from None
    out = Path(tempfile.mkdtemp(prefix="jobsched-gpuspec-")) / f"{Path(str(pods)).stem}_gpuspec.csv"
    write_pods_csv(variant, out)
    return str(out)


def _check_inputs(nodes: str | None, pods: str | None, policy: list[str] | None, mode: str) -> None:
    from jobsched.core.policies import names

    for opt, val in (("--nodes", nodes), ("--pods", pods)):
        if not val:
            raise _bad(opt, f"is required in {mode} mode")
        if not Path(val).exists():
            raise _bad(opt, f"file {val!r} does not exist")
    known = names()
    for p in policy or ():
        if p not in known:
            raise _bad("--policy", f"unknown policy {p!r} (known: {', '.join(known)})")


def _gpumem(nodes: str | None, pods: str | None, policy: list[str] | None, seeds: list[int], margin: float,
            error: float) -> dict[str, Any]:
    from jobsched.sim.gpumem import gpumem_report
    from jobsched.sim.trace import TraceError

    _check_inputs(nodes, pods, policy, "gpumem")
    if policy and len(policy) > 1:
        raise _bad("--policy", f"gpumem mode takes one policy (it scores all three sharing models), got {len(policy)}")
    try:
        return gpumem_report(str(nodes), str(pods), seeds, margin, error, policy[0] if policy else None,
                             progress=_progress)
    except TraceError as e:
        raise _bad("--nodes" if str(e).startswith("nodes") else "--pods", str(e)) from None
    except ValueError as e:
        raise _bad("--pods", str(e)) from None


def _memory(pods: str | None, seeds: list[int]) -> dict[str, Any]:
    try:
        from jobsched.sim.memory import run_memory_mode
    except ImportError as e:
        typer.echo(f"Error: --mode memory is not available: jobsched.sim.memory cannot be imported ({e})", err=True)
        raise typer.Exit(2) from None
    if pods and not Path(pods).exists():
        raise _bad("--pods", f"file {pods!r} does not exist")
    try:
        return run_memory_mode(pods, seeds)
    except ValueError as e:
        typer.echo(f"Error: --mode memory: {e}", err=True)
        raise typer.Exit(2) from None


def _print_text(report: dict[str, Any]) -> None:
    from rich.console import Console

    from jobsched.cli.output import _table

    console = Console(width=max(Console().width, 132))
    if report.get("mode") == "memory":
        from jobsched.sim.memory import format_table

        print(format_table(report))
        return
    if report.get("mode") == "gpumem":
        from jobsched.sim import gpumem

        print(gpumem.format_table(report))
        return
    if report.get("mode") == "packing":
        points = ("90", "100", "110", "120", "130")
        cols = [f"{p}%" for p in points]
        t = _table("POLICY", *cols, right=tuple(cols),
                   title=f"GPU allocated (% of capacity) vs arrived GPU requests - {report['pods']} "
                         f"({len(report['seeds'])} seeds, mean ± std)")
        for name, pol in report["policies"].items():
            t.add_row(name, *(f"{pol['allocated_pct'][p]:.1f} ± {pol['spread'][p]:.1f}" for p in points))
        console.print(t)
    elif report.get("mode") == "replay":
        cols = ("ADMITTED", "REJECTED", "PENDING", "DELAY MEAN S", "DELAY P95 S", "JCT MEAN S", "GPU ALLOC %",
                "COST USD")
        t = _table("POLICY", *cols, right=cols, title=f"Replay of {report['pods']}")
        for name, r in report["policies"].items():
            d, j = r["queueing_delay_s"], r["jct_s"]
            t.add_row(name, str(r["admitted"]), str(r["rejected"]), str(r["pending_at_end"]),
                      str(d.get("mean", "-")), str(d.get("p95", "-")), str(j.get("mean", "-")),
                      str(r["gpu_alloc_pct_mean"]), str(r["cost_usd"]))
        console.print(t)
    else:
        console.print_json(json.dumps(report))
