"""Checks before starting a replica as a local process: what would fail the same way on every
retry (a missing or non-executable command, a missing working directory, an invalid environment)
is a permanent :class:`StartError`, so the job fails at once with a precise message."""

from __future__ import annotations

import os
import shutil

from jobsched.backends.base import ReplicaLaunch, StartError


def check_env(env: dict[str, str]) -> str | None:
    for name, value in env.items():
        if not name:
            return "spec.template.env: an environment variable has an empty name"
        if "\0" in name:
            return f"spec.template.env: variable name {name!r} contains a NUL byte"
        if "=" in name:
            return f"spec.template.env: variable name {name!r} contains '='"
        if "\0" in value:
            return f"spec.template.env: the value of {name} contains a NUL byte"
    return None


def check_working_dir(working_dir: str | None) -> str | None:
    if not working_dir:
        return None
    if "\0" in working_dir:
        return "spec.template.workingDir: contains a NUL byte"
    if not os.path.isdir(working_dir):
        what = "is not a directory" if os.path.exists(working_dir) else "does not exist"
        return f"spec.template.workingDir: {working_dir} {what}"
    return None


def check_command(argv: list[str], env: dict[str, str], working_dir: str | None) -> str | None:
    prog = argv[0] if argv else ""
    if not prog or "\0" in prog or any("\0" in a for a in argv):
        return "spec.template.command: empty, or contains a NUL byte"
    if os.sep in prog:  # a path: relative to the replica's working directory
        path = os.path.join(working_dir or os.getcwd(), prog)
        if not os.path.exists(path):
            return f"spec.template.command: {prog!r} does not exist" + (
                f" (relative to {working_dir})" if not os.path.isabs(prog) and working_dir else "")
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return f"spec.template.command: {prog!r} is not an executable file"
        return None
    search = env.get("PATH", os.defpath)
    if shutil.which(prog, path=search) is None:
        return f"spec.template.command: {prog!r} not found on the replica's PATH ({search})"
    return None


def check_replica(rep: ReplicaLaunch) -> None:
    """Raise a permanent StartError naming the field if ``rep`` cannot start on this machine."""
    problem = (check_env(rep.env) or check_working_dir(rep.working_dir)
               or check_command(rep.argv, rep.env, rep.working_dir))
    if problem:
        raise StartError(f"replica {rep.rank}: {problem}", permanent=True)
