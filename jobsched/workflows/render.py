"""``{{...}}`` substitution: plain references and ``{{=expression}}``."""

from __future__ import annotations

import re
from typing import Any

from jobsched.workflows import expr

_REF = re.compile(r"{{\s*(=?)\s*(.*?)\s*}}", re.S)
# References jobsched resolves; anything else between braces is left as it is.
_KNOWN = ("inputs.", "outputs.", "workflow.", "tasks.", "steps.", "item", "retries", "pod.",
          "node.", "lastRetry.")


class Unresolved(ValueError):
    pass


def _known(key: str) -> bool:
    return key.startswith(_KNOWN)


def substitute(text: str, scope: dict[str, str], strict: bool = True) -> str:
    """Replace references from ``scope``. Unknown known-prefix references raise :class:`Unresolved`
    when ``strict``, else stay for a later pass (a DAG's ``tasks.*`` before the tasks ran)."""

    def lookup(name: str) -> Any:
        if name in scope:
            return scope[name]
        raise Unresolved(f"cannot resolve {name!r}")

    def repl(m: re.Match[str]) -> str:
        is_expr, key = m.group(1) == "=", m.group(2)
        if is_expr:
            try:
                return expr.format_value(expr.evaluate(key, lookup))
            except Unresolved:
                if strict:
                    raise
                return m.group(0)
            except expr.ExprError as e:
                raise Unresolved(f"{{{{={key}}}}}: {e}") from None
        if key in scope:
            return scope[key]
        if strict and _known(key):
            raise Unresolved(f"cannot resolve {{{{{key}}}}}")
        return m.group(0)

    return _REF.sub(repl, text)


def substitute_all(value: Any, scope: dict[str, str], strict: bool = True) -> Any:
    """Substitute in every string of a JSON-like structure."""
    if isinstance(value, str):
        return substitute(value, scope, strict)
    if isinstance(value, list):
        return [substitute_all(v, scope, strict) for v in value]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, strict) for k, v in value.items()}
    return value
