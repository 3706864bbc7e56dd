"""The ``jobsched`` command line. Each command module exposes ``register(app)``; a module that does
not exist is skipped, but an error inside one that exists is not hidden.

Start-up imports are kept light (typer only): the SDK, rich tables and the server are imported by the
commands that need them, so ``jobsched --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import typer

COMMAND_MODULES = [
    "jobsched.cli.jobs",
    "jobsched.cli.server",
    "jobsched.cli.estimate",
    "jobsched.cli.simulate",
    "jobsched.cli.workflow",
    "jobsched.cli.lifecycle",
    "jobsched.cli.shell",
]


def build_app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="jobsched",
        help="Gang scheduler for ML training jobs, with memory right-sizing. "
             "Exit codes: 0 ok, 1 job failed (--wait), 2 invalid input, 3 server unreachable.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(app)
    from jobsched.cli.shell import add_examples

    add_examples(app)
    return app


def main() -> None:
    import os

    if sys.argv[1:2] == ["list"]:  # the common read: a fast path without typer, rich, httpx, pydantic
        from jobsched.cli.listing import fast_list

        if fast_list(sys.argv[2:]):
            return

    if os.environ.get("_JOBSCHED_COMPLETE"):  # the shell asks for completions (jobsched completion)
        from typer._completion_classes import completion_init

        completion_init()
    build_app()(prog_name="jobsched")


if __name__ == "__main__":
    main()
