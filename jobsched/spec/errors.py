"""Validation errors that name the field path, shared by CLI (exit 2) and API (HTTP 422/400)."""

from __future__ import annotations

import re

from pydantic import ValidationError

_SUBPATH = re.compile(r"^([a-zA-Z][\w\-]*(?:\.[\w\-/]+|\[\d+\])*): (.*)$", re.S)


class SpecError(ValueError):
    """Invalid user input. ``str(err)`` names the offending field path(s)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``spec.replicas: Input should be greater than or equal to 1``."""
    lines = []
    for e in err.errors():
        loc = _loc(tuple(e["loc"]))
        if prefix:
            loc = f"{prefix}.{loc}" if loc != "<root>" else prefix
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        m = _SUBPATH.match(msg)
        if m and loc != "<root>":  # a model validator naming a sub-field: join the paths
            loc, msg = f"{loc}.{m.group(1)}", m.group(2)
        lines.append(f"{loc}: {msg}")
    return "\n".join(lines)


def spec_error_from(err: ValidationError, prefix: str = "") -> SpecError:
    return SpecError(format_validation_error(err, prefix))
