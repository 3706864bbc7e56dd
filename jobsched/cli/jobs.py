"""Job, queue and node commands: a thin layer over :class:`jobsched.sdk.client.Client`.

The SDK (httpx, pydantic) is imported inside the commands so that ``jobsched --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from jobsched.cli.output import (
    EXIT_JOB_FAILED,
    Format,
    ListFormat,
    emit,
    sdk_errors,
)

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.client import Client
    from jobsched.spec.api import JobStatus

NS = typer.Option("default", "--namespace", "-n", help="Namespace of the job.")
OUT = typer.Option(Format.table, "--output", "-o", help="Output format.")
_INTERPRETERS = {"python", "python3", "env", "bash", "sh", "uv", "torchrun", "accelerate"}


def _client() -> Client:
    from jobsched.sdk.client import Client

    return Client()


def default_job_name(argv: list[str]) -> str:
    """``python train.py --lr 1`` -> ``train-x7k2q``: the script (or ``-m`` module, or program)
    plus a random suffix."""
    base = next((Path(a).name.rsplit(".", 1)[0] for a in argv if a.endswith((".py", ".sh"))), None)
    if base is None and "-m" in argv[:-1]:
        base = argv[argv.index("-m") + 1].rsplit(".", 1)[-1]
    if base is None:
        base = next((Path(a).name for a in argv if not a.startswith("-") and
                     Path(a).name.split(".")[0] not in _INTERPRETERS
                     and not Path(a).name.startswith("python")), "job")
    base = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:50] or "job"
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return f"{base}-{suffix}"


def _wait(client: Client, st: JobStatus, follow: bool = False) -> JobStatus:
    """Wait for the job with a live progress line on stderr. Ctrl-C stops waiting, not the job."""
    from jobsched.cli.progress import watch

    try:
        return watch(client, st, follow)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; {st.namespace}/{st.name} keeps running "
              f"(jobsched cancel {st.name} -n {st.namespace} stops it)", file=sys.stderr)
        raise typer.Exit(130) from None


def _finish(client: Client, st: JobStatus, wait: bool, output: Format, follow: bool = False) -> None:
    if wait:
        st = _wait(client, st, follow)
    if output is not Format.table:
        emit(st, output)
    elif wait:
        from jobsched.cli.output import job_detail

        job_detail(st)
    else:
        print(f"{st.namespace}/{st.name} submitted to queue {st.queue} ({st.phase.value})")
    for e in st.events:  # what a converted manifest asked for that jobsched does not honour
        if e.reason == "NotHonoured" and not wait:
            print(f"warning: {st.name}: {e.message}", file=sys.stderr)
    if wait and st.phase.value != "Succeeded":
        from jobsched.cli.progress import failure_hint

        hint = failure_hint(client, st)
        if hint:
            print(hint, file=sys.stderr)
        raise typer.Exit(EXIT_JOB_FAILED)


DRY_RUN = typer.Option(False, "--dry-run", help="Validate, size memory and check never-fits and quota "
                       "against the current cluster; store nothing.")


FOLLOW = typer.Option(False, "--follow", "-f", help="With --wait: stream the logs meanwhile.")


def _submit(client: Client, job: Any, wait: bool, output: Format, dry_run: bool, follow: bool = False) -> None:
    if dry_run:
        from jobsched.cli.lifecycle import show_dry_run

        show_dry_run(client.dry_run(job), output)
        return
    if follow and not wait:
        from jobsched.cli.output import fail

        fail("--follow: needs --wait")
    _finish(client, client.submit(job), wait, output, follow)


def submit(file: Path = typer.Argument(..., help="TrainingJob manifest (YAML)."),
           wait: bool = typer.Option(False, "--wait", "-w", help="Wait until the job ends."),
           output: Format = OUT, dry_run: bool = DRY_RUN, follow: bool = FOLLOW) -> None:
    """Submit a job manifest: a TrainingJob, or a Kubeflow PyTorchJob/MXJob/TFJob, batch/v1 Job, Pod
    or Volcano Job (converted; docs/migrating.md). A file may hold several, separated by '---'."""
    from jobsched.sdk.multidoc import job_manifests

    with sdk_errors():
        client = _client()
        warnings: list[str] = []
        manifests = job_manifests(file, warnings)  # every document validated before the first is sent
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        if len(manifests) > 1 and (wait or follow):
            from jobsched.cli.output import fail

            fail(f"--wait: {file} holds {len(manifests)} jobs; wait for one job at a time")
        for manifest in manifests:
            _submit(client, manifest, wait, output, dry_run, follow)


def run(command: list[str] = typer.Argument(..., help="The command, after '--'."),
        name: str | None = typer.Option(None, help="Job name (default: from the command)."),
        namespace: str = NS,
        queue: str = typer.Option("default", help="Queue."),
        cpu: str | None = typer.Option(None, help="CPU per replica, e.g. 2 or 500m."),
        memory: str | None = typer.Option(None, help="Memory per replica (request and limit), e.g. 4Gi."),
        gpu: int | None = typer.Option(None, help="GPUs per replica."),
        replicas: int = typer.Option(1, help="Number of replicas (gang-scheduled)."),
        priority: int = typer.Option(0, help="Priority (higher first; may preempt)."),
        memory_policy: str = typer.Option("Fixed", help="Fixed or Auto (right-size before launch)."),
        max_retries: int = typer.Option(3, help="Retries after failed attempts."),
        env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE, repeatable."),
        factory: str | None = typer.Option(None, help="module:function returning (model, optimizer, "
                                           "(inputs, targets), loss_fn), imported from the current "
                                           "directory to estimate memory."),
        factory_kwargs: str | None = typer.Option(None, help="JSON object of keyword arguments for "
                                                  "--factory."),
        wait: bool = typer.Option(False, "--wait", "-w", help="Wait until the job ends."),
        output: Format = OUT, dry_run: bool = DRY_RUN, follow: bool = FOLLOW) -> None:
    """Run a command as a job: jobsched run [OPTIONS] -- CMD ARGS..."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = limits["memory"] = memory
    if gpu is not None:
        requests["nvidia.com/gpu"] = gpu
    env_map: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from jobsched.cli.output import fail

            fail(f"--env: expected KEY=VALUE, got {item!r}")
        env_map[key] = value
    right_sizing = _right_sizing(factory, factory_kwargs)
    manifest = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": name or default_job_name(command), "namespace": namespace},
        "spec": {"queue": queue, "priority": priority, "replicas": replicas,
                 "memoryPolicy": memory_policy, "maxRetries": max_retries,
                 **({"rightSizing": right_sizing} if right_sizing else {}),
                 "template": {"command": command, "workingDir": os.getcwd(), "env": env_map,
                              "resources": {"requests": requests, "limits": limits}}},
    }
    with sdk_errors():
        _submit(_client(), manifest, wait, output, dry_run, follow)


def _right_sizing(factory: str | None, factory_kwargs: str | None) -> dict[str, Any]:
    from jobsched.cli.output import fail

    out: dict[str, Any] = {}
    if factory is not None:
        out["factory"] = factory
    if factory_kwargs is not None:
        if factory is None:
            fail("--factory-kwargs: needs --factory")
        try:
            kwargs = json.loads(factory_kwargs)
        except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
            fail(f"--factory-kwargs: not valid JSON: {e}")
        if not isinstance(kwargs, dict):
            fail(f"--factory-kwargs: expected a JSON object, got {type(kwargs).__name__}")
        out["factoryKwargs"] = kwargs
    return out


def list_jobs(namespace: str | None = typer.Option(None, "--namespace", "-n",
                                                   help="Only this namespace (default: all)."),
              phase: str | None = typer.Option(None, help="Only this phase, e.g. Running."),
              queue: str | None = typer.Option(None, help="Only this queue."),
              limit: int = typer.Option(500, "--limit", help="Jobs per page (1-1000), oldest first."),
              continue_: str | None = typer.Option(None, "--continue", help="The next page: the token a "
                                                   "previous list printed (same filters)."),
              all_pages: bool = typer.Option(False, "--all", "-A", help="Every page."),
              output: ListFormat = typer.Option(ListFormat.table, "--output", "-o",
                                                help="Output format (wide: node, memory request and "
                                                     "limit).")) -> None:
    """List jobs with their phase, attempts, memory, cost and reason: the first page (--limit), and
    how to get the next; -A for all of them."""
    from jobsched.cli.output import jobs_table

    with sdk_errors():
        client = _client()
        if all_pages:
            jobs, token, remaining = client.list(namespace=namespace, phase=phase, queue=queue), None, 0
        else:
            page = client.list_page(namespace, phase, queue, limit, continue_)
            jobs, token, remaining = page.items, page.continue_, page.remaining
    if output in (ListFormat.table, ListFormat.wide):
        jobs_table(jobs, wide=output is ListFormat.wide)
    else:
        emit(jobs, Format(output.value))
    if token:
        filters = "".join(f" {flag} {v}" for flag, v in (("-n", namespace), ("--phase", phase),
                                                           ("--queue", queue)) if v)
        print(f"{len(jobs)} shown, {remaining} more: jobsched list{filters} --limit {limit} --continue {token}"
              f"  (or -A for all)", file=sys.stderr)


def status(name: str, namespace: str = NS, output: Format = OUT) -> None:
    """Show a job: phase, attempts (memory, peak, exit code, reason), events."""
    from jobsched.cli.output import job_detail

    with sdk_errors():
        client = _client()
        st = client.get(name, namespace)
        if output is not Format.table:
            emit(st, output)
            return
        job_detail(st)
        from jobsched.cli.progress import failure_hint

        hint = failure_hint(client, st)
        if hint:
            print(hint, file=sys.stderr)


def logs(name: str, namespace: str = NS,
         replica: int | None = typer.Option(None, "--replica", "-r", help="Only this rank."),
         attempt: int | None = typer.Option(None, help="Attempt index (default: the latest)."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends.")) -> None:
    """Print a job's logs (all replicas prefixed [rank N], unless --replica)."""
    with sdk_errors():
        client = _client()
        out: str | Iterator[str] = (
            client.logs(name, replica, attempt, follow=True, namespace=namespace) if follow
            else client.logs(name, replica, attempt, namespace=namespace))
        chunks = [out] if isinstance(out, str) else out
        try:
            for chunk in chunks:
                sys.stdout.write(chunk)
                sys.stdout.flush()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def cancel(name: str, namespace: str = NS) -> None:
    """Cancel a job (its replicas are stopped)."""
    with sdk_errors():
        st = _client().cancel(name, namespace)
    print(f"{st.namespace}/{st.name} {st.phase.value}")


def events(name: str, namespace: str = NS, output: Format = OUT) -> None:
    """Show a job's events."""
    from jobsched.cli.output import console, events_table

    with sdk_errors():
        evs = _client().events(name, namespace)
    emit(evs, output) if output is not Format.table else console().print(events_table(evs))


def queues(output: Format = OUT) -> None:
    """List queues with their quota, usage and pending/running jobs."""
    from jobsched.cli.output import queues_table

    with sdk_errors():
        qs = _client().queues()
    emit(qs, output) if output is not Format.table else queues_table(qs)


def queue_apply(file: Path = typer.Argument(..., help="Queue manifest (YAML).")) -> None:
    """Create or update queues: jobsched Queues, Kueue ClusterQueue + LocalQueue (+ ResourceFlavor) or
    Volcano Queues (converted; docs/migrating.md). A file may hold several, separated by '---'."""
    from jobsched.sdk.multidoc import apply_file

    with sdk_errors():
        applied, warnings = apply_file(_client(), file)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for q in applied:
        print(f"queue {q.name} applied")


def nodes(output: Format = OUT) -> None:
    """List nodes with allocatable and allocated resources."""
    from jobsched.cli.output import nodes_table

    with sdk_errors():
        ns = _client().nodes()
    emit(ns, output) if output is not Format.table else nodes_table(ns)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command(context_settings={"allow_interspersed_args": False})(run)
    app.command("list")(list_jobs)
    app.command()(status)
    app.command()(logs)
    app.command()(cancel)
    app.command()(events)
    app.command()(queues)
    queue_app = typer.Typer(help="Manage queues.", no_args_is_help=True)
    queue_app.command("apply")(queue_apply)
    app.add_typer(queue_app, name="queue")
    app.command()(nodes)
