"""Shell niceties: ``jobsched completion bash|zsh|fish``, ``--version`` and the examples shown at
the end of every command's ``--help``."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

PROG = "jobsched"
COMPLETE_VAR = "_JOBSCHED_COMPLETE"

# Command path -> example lines (each is shown as is, under "Examples:").
EXAMPLES: dict[str, list[str]] = {
    "submit": ["jobsched submit examples/hello.yaml --wait", "jobsched submit job.yaml --dry-run",
               "jobsched submit job.yaml -o json"],
    "run": ["jobsched run --memory 2Gi -- python train.py --lr 0.1",
            "jobsched run --replicas 2 --memory-policy Auto --wait -- python -m workers.train --kernel mlp",
            "jobsched run --dry-run --memory 64Gi -- python train.py"],
    "list": ["jobsched list", "jobsched list --phase Running -o wide", "jobsched list -n research -o json"],
    "status": ["jobsched status train-x7k2q", "jobsched status train-x7k2q -o json"],
    "logs": ["jobsched logs train-x7k2q -f", "jobsched logs train-x7k2q --replica 1 --attempt 0"],
    "cancel": ["jobsched cancel train-x7k2q"],
    "delete": ["jobsched delete train-x7k2q", "jobsched delete train -n research"],
    "events": ["jobsched events train-x7k2q"],
    "queues": ["jobsched queues", "jobsched queues -o json"],
    "queue": ["jobsched queue apply examples/queue.yaml"],
    "workflow": ["jobsched workflow submit examples/workflows/ml-pipeline.yaml --wait", "jobsched workflow list"],
    "queue apply": ["jobsched queue apply examples/queue.yaml"],
    "nodes": ["jobsched nodes"],
    "estimate": ["jobsched estimate examples/ddp-mlp.yaml",
                 "jobsched estimate --factory model:make --kwargs '{\"width\": 1024}'"],
    "simulate": ["jobsched simulate --help"],
    "server": ["jobsched server --port 8470", "jobsched server --backend kubernetes --kubeconfig ~/.kube/config"],
    "server stop": ["jobsched server stop"],
    "server status": ["jobsched server status"],
    "workflow lint": ["jobsched workflow lint examples/workflows/ml-pipeline.yaml"],
    "workflow submit": ["jobsched workflow submit examples/workflows/ml-pipeline.yaml --wait"],
    "workflow status": ["jobsched workflow status ml-pipeline-x7k2q"],
    "workflow list": ["jobsched workflow list"],
    "workflow logs": ["jobsched workflow logs ml-pipeline-x7k2q"],
    "workflow cancel": ["jobsched workflow cancel ml-pipeline-x7k2q"],
    "workflow resume": ["jobsched workflow resume release-8fq2z",
                        "jobsched workflow resume release-8fq2z --node approve -p version=v2"],
    "token": ["jobsched token create alice --namespace team-a --role user", "jobsched token list"],
    "token create": ["jobsched token create alice --namespace team-a --role user",
                     "jobsched token create ci --namespace team-a --namespace team-b --role viewer"],
    "token list": ["jobsched token list", "jobsched token list -o json"],
    "token revoke": ["jobsched token revoke alice"],
    "audit": ["jobsched audit", "jobsched audit --limit 200 -o json"],
    "dashboard": ["jobsched dashboard", "jobsched dashboard --print-url"],
    "completion": ["jobsched completion bash > ~/.local/share/bash-completion/completions/jobsched",
                   "jobsched completion zsh > ~/.zfunc/_jobsched",
                   "jobsched completion fish > ~/.config/fish/completions/jobsched.fish"],
}


def epilog(path: str) -> str | None:
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    # \b: click keeps the block as written instead of re-wrapping it into one paragraph
    return "Examples:\n\n\b\n" + "\n".join(f"  {x}" for x in lines)


def add_examples(app: typer.Typer, prefix: str = "") -> None:
    """Give every command (and sub-command) of ``app`` its examples as the ``--help`` epilog."""
    for cmd in app.registered_commands:
        name = cmd.name or (cmd.callback.__name__.replace("_", "-") if cmd.callback else "")
        if cmd.epilog is None:
            cmd.epilog = epilog(f"{prefix}{name}")
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        path = f"{prefix}{group.name or sub.info.name}"
        if sub.info.epilog is None or isinstance(sub.info.epilog, type(typer.models.Default(None))):
            sub.info.epilog = epilog(path)
        add_examples(sub, path + " ")


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the shell completion script (commands, options, job names are not completed)."""
    from typer._completion_shared import get_completion_script

    print(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value))


def version_callback(value: bool) -> None:
    if value:
        from jobsched.version import __version__

        print(f"jobsched {__version__}")
        raise typer.Exit()


def main_callback(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                               help="Print the version and exit."),
                  ca: Path | None = typer.Option(
                      None, "--ca", help="CA certificates (PEM) for an https:// JOBSCHED_URL with a "
                      "self-signed certificate (default $JOBSCHED_CA_FILE).")) -> Any:
    """Gang scheduler for ML training jobs, with memory right-sizing. Exit codes: 0 ok, 1 job failed
    (--wait), 2 invalid input, 3 server unreachable or unauthorized, 4 forbidden."""
    if ca is not None:
        if not ca.is_file():
            print(f"error: --ca: no such file: {ca}", file=sys.stderr)
            raise typer.Exit(2)
        os.environ["JOBSCHED_CA_FILE"] = str(ca.expanduser().resolve())


def register(app: typer.Typer) -> None:
    app.callback()(main_callback)
    app.command()(completion)
