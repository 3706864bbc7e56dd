"""``jobsched delete`` and the rendering of ``submit/run --dry-run``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from jobsched.cli.output import EXIT_INVALID, Format, emit, sdk_errors

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.spec.api import DryRunResult


def show_dry_run(res: DryRunResult, output: Format) -> None:
    """The dry run's findings; exit 2 when the job could never run as specified."""
    if output is not Format.table:
        emit(res, output)
    else:
        from jobsched.cli.output import console, fmt_bytes

        c = console()
        c.print(f"[bold]{res.namespace}/{res.name}[/bold]  dry run: valid, nothing stored"
                + ("  (name generated at submit)" if res.name_generated else ""))
        rows = [("queue", res.queue), ("memory", f"{fmt_bytes(res.memory)} per replica" if res.memory else "-"),
                ("memory reason", res.memory_reason), ("quota", res.quota or "-"), ("verdict", res.verdict)]
        rows += [("skipped", s) for s in res.skipped] + [("warning", w) for w in res.warnings]
        for k, v in rows:
            c.print(f"  {k:<15}{v}", soft_wrap=True)
    if not res.fits:
        raise typer.Exit(EXIT_INVALID)


def delete(name: str = typer.Argument(..., help="The job's name."),
           namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the job.")) -> None:
    """Delete a job: cancel it if it runs, wait until its replicas stopped, then remove it with
    its attempts, events, memory timelines, logs and the checkpoints jobsched made for it (a
    spec.checkpointDir you named is kept). On Kubernetes its pods, Service and checkpoint claim go too."""
    from jobsched.sdk.client import Client

    with sdk_errors():
        st = Client().delete(name, namespace)
    kept = (st.manifest or {}).get("spec", {}).get("checkpointDir")
    print(f"{st.namespace}/{st.name} deleted (was {st.phase.value})"
          + (f"; kept your checkpointDir {kept}" if kept else ""))


def register(app: typer.Typer) -> None:
    app.command()(delete)
