"""The ``jobsched`` command line. Each command module exposes ``register(app)``; a module that does
not exist is skipped, but an error inside one that exists is not hidden.

Start-up imports are kept light (typer only): the SDK, rich tables and the server are imported by the
commands that need them, so ``jobsched --help`` stays fast.

Ctrl-C: the first statements below make SIGINT raise KeyboardInterrupt even when the process was
started with SIGINT ignored (a background job of a non-interactive shell, as CI runners start tests:
Python then keeps the inherited SIG_IGN and a ``--wait`` would never stop). ``main`` turns a
KeyboardInterrupt that no command handled, e.g. one during start-up imports, into exit code 130
without a traceback.
"""

from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130

try:  # a Ctrl-C from here on never prints a traceback
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)  # before anything slow is imported

    import importlib
    import importlib.util
except KeyboardInterrupt:
    print("\ninterrupted", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    import typer

COMMAND_MODULES = [
    "jobsched.cli.jobs",
    "jobsched.cli.server",
    "jobsched.cli.estimate",
    "jobsched.cli.simulate",
    "jobsched.cli.workflow",
    "jobsched.cli.token",
    "jobsched.cli.dashboard",
    "jobsched.cli.lifecycle",
    "jobsched.cli.shell",
]


def build_app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="jobsched",
        help="Gang scheduler for ML training jobs, with memory right-sizing. "
             "Exit codes: 0 ok, 1 job failed (--wait), 2 invalid input, 3 server unreachable or "
             "unauthorized, 4 forbidden.",
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
    try:
        if sys.argv[1:2] == ["list"]:  # the common read: a fast path without typer, rich, httpx, pydantic
            from jobsched.cli.listing import fast_list

            if fast_list(sys.argv[2:]):
                return
        if os.environ.get("_JOBSCHED_COMPLETE"):  # the shell asks for completions (jobsched completion)
            from typer._completion_classes import completion_init

            completion_init()
        build_app()(prog_name="jobsched")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
