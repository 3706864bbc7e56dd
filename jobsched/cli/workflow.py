"""``jobsched workflow lint|submit|status|list|logs|cancel``: Argo Workflows on jobsched.

``lint`` runs locally (no server). The SDK is imported inside the commands (fast ``--help``).
Exit codes: 0 ok; 1 the workflow did not succeed (``--wait``); 2 invalid input; 3 no server.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from jobsched.cli.output import EXIT_JOB_FAILED, Format, emit, fail, sdk_errors

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.workflows import WorkflowsAPI

NS = typer.Option("default", "--namespace", "-n", help="Namespace of the workflow.")
OUT = typer.Option(Format.table, "--output", "-o", help="Output format.")
PARAMS = typer.Option([], "--parameter", "-p", help="Workflow parameter NAME=VALUE, repeatable.")


def _api() -> WorkflowsAPI:
    from jobsched.sdk.client import Client
    from jobsched.sdk.workflows import WorkflowsAPI

    return WorkflowsAPI(Client())


def _params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--parameter: expected NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def _outputs(n: dict[str, Any]) -> str:
    out = n.get("outputs") or {}
    parts = []
    if "result" in out:
        r = str(out["result"]).replace("\n", "\\n")
        parts.append(f"result={r[:40]}{'...' if len(r) > 40 else ''}")
    params = out.get("parameters") or {}
    if isinstance(params, dict):
        parts += [f"{k}={v}" for k, v in params.items()]
    return ", ".join(parts)


def _show(st: dict[str, Any]) -> None:
    from jobsched.cli.output import _table, console

    c = console()
    c.print(f"Name:     {st['namespace']}/{st['name']}\nPhase:    {st['phase']}"
            + (f"\nMessage:  {st['message']}" if st.get("message") else "")
            + f"\nProgress: {st['progress']}\nStarted:  {_when(st['startedAt'])}"
            + f"\nFinished: {_when(st['finishedAt'])}")
    t = _table("NODE", "DISPLAY", "TEMPLATE", "PHASE", "STARTED", "FINISHED", "ATTEMPTS", "OUTPUTS")
    for n in st["nodes"]:
        t.add_row(n["name"], n["displayName"], n["template"] or "-", n["phase"], _when(n["startedAt"]),
                  _when(n["finishedAt"]), str(n["attempts"]), _outputs(n))
    c.print(t)
    for w in st.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def lint(file: Path = typer.Argument(..., help="Argo Workflow manifest (YAML)."),
         parameter: list[str] = PARAMS) -> None:
    """Check a workflow like `argo lint`, without running anything."""
    from jobsched.sdk.workflows import lint as lint_workflow

    with sdk_errors():
        warnings = lint_workflow(file, _params(parameter))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{file}: ok")


def submit(file: Path = typer.Argument(..., help="Argo Workflow manifest (YAML)."),
           parameter: list[str] = PARAMS,
           wait: bool = typer.Option(False, "--wait", "-w", help="Wait until the workflow ends."),
           output: Format = OUT) -> None:
    """Submit an Argo Workflow; every step runs as a jobsched job."""
    from jobsched.sdk.errors import InvalidSpec
    from jobsched.sdk.workflows import lint as lint_workflow

    params = _params(parameter)
    with sdk_errors():
        try:
            lint_workflow(file, params, max_loop_items=None)  # errors before anything is sent (the
            # server checks loop sizes against its own --max-loop-items)
        except InvalidSpec as e:
            if "or submit it first" not in str(e):  # a WorkflowTemplate the server may have
                raise
        api = _api()
        st = api.submit(file, params)
        if "items" in st:  # several documents (templates, cron workflows, workflows)
            _submitted_documents(st["items"], wait, output)
            return
        for w in st.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
        if wait:
            st = api.wait(st["name"], st["namespace"], on_update=lambda s: print(
                f"{s['name']}: {s['phase']} ({s['progress']} steps succeeded)", file=sys.stderr, flush=True))
    if output is not Format.table:
        emit(st, output)
    elif wait:
        _show(st)
    else:
        print(f"{st['namespace']}/{st['name']} submitted ({st['phase']})")
    if wait and st["phase"] != "Succeeded":
        raise typer.Exit(EXIT_JOB_FAILED)


def _submitted_documents(items: list[dict[str, Any]], wait: bool, output: Format) -> None:
    workflows = [i for i in items if i.get("kind") == "Workflow"]
    for i in items:
        for w in i.get("warnings", []):
            print(f"warning: {i.get('kind')} {i.get('name')}: {w}", file=sys.stderr)
    if wait:
        with sdk_errors():
            api = _api()
            workflows = [api.wait(w["name"], w["namespace"]) for w in workflows]
            done = {w["name"]: w for w in workflows}
            items = [{**i, **done.get(i["name"], {})} if i.get("kind") == "Workflow" else i for i in items]
    if output is not Format.table:
        emit(items, output)
    else:
        for i in items:
            what = "submitted" if i.get("kind") == "Workflow" else "created"
            ns = f"{i['namespace']}/" if i.get("namespace") else ""
            print(f"{i.get('kind', 'Workflow')} {ns}{i['name']} {what}" + (f" ({i['phase']})" if "phase" in i else ""))
    if wait and any(w["phase"] != "Succeeded" for w in workflows):
        raise typer.Exit(EXIT_JOB_FAILED)


def status(name: str = typer.Argument(..., help="Workflow name."), namespace: str = NS,
           output: Format = OUT) -> None:
    """Phase of the workflow and of every node (times, attempts, outputs)."""
    with sdk_errors():
        st = _api().get(name, namespace)
    if output is Format.table:
        _show(st)
    else:
        emit(st, output)


def list_workflows(namespace: str | None = typer.Option(None, "--namespace", "-n"),
                   output: Format = OUT) -> None:
    """List workflows."""
    from jobsched.cli.output import _table, console, fmt_age

    with sdk_errors():
        items = _api().list(namespace)
    if output is not Format.table:
        emit(items, output)
        return
    t = _table("NAME", "NAMESPACE", "PHASE", "PROGRESS", "AGE", "MESSAGE")
    for w in items:
        t.add_row(w["name"], w["namespace"], w["phase"], w["progress"], fmt_age(w["created_at"]),
                  w.get("message") or "")
    console().print(t)


def logs(name: str = typer.Argument(..., help="Workflow name."), namespace: str = NS) -> None:
    """The output of every step, each line prefixed with the step's name."""
    with sdk_errors():
        sys.stdout.write(_api().logs(name, namespace))


def cancel(name: str = typer.Argument(..., help="Workflow name."), namespace: str = NS) -> None:
    """Stop a workflow: its running steps are cancelled; it ends Failed."""
    with sdk_errors():
        st = _api().cancel(name, namespace)
    print(f"{st['namespace']}/{st['name']}: {st['phase']}" + (f" ({st['message']})" if st.get("message") else ""))


def resume(name: str = typer.Argument(..., help="Workflow name."), namespace: str = NS,
           node: str | None = typer.Option(None, "--node", help="Only the suspended step of this name."),
           parameter: list[str] = typer.Option([], "--parameter", "-p",
                                               help="NAME=VALUE for an output with valueFrom.supplied; repeatable.")
           ) -> None:
    """Resume a workflow's suspended steps (`suspend: {}` templates), optionally supplying their outputs."""
    params = _params(parameter)
    with sdk_errors():
        st = _api().resume(name, namespace, node, params)
    print(f"{st['namespace']}/{st['name']}: {st['phase']}" + (f" ({st['message']})" if st.get("message") else ""))


def register(app: typer.Typer) -> None:
    wf = typer.Typer(help="Argo Workflows (argoproj.io/v1alpha1 Workflow) on jobsched.", no_args_is_help=True)
    wf.command()(lint)
    wf.command()(submit)
    wf.command()(status)
    wf.command("list")(list_workflows)
    wf.command()(logs)
    wf.command()(cancel)
    wf.command()(resume)
    app.add_typer(wf, name="workflow")
