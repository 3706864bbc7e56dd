"""The small expression language of ``when``, ``depends``, ``retryStrategy.expression`` and ``{{=...}}``.

A recursive-descent parser over tokens (no ``eval``): literals (numbers, quoted strings, true/false),
identifiers resolved by a callback, ``! && || == != < <= > >= =~ !~ matches + - * / %``, parentheses,
and a few functions (int, asInt, float, asFloat, string, len, sprig.int, sprig.float64, ...).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>\d+(?:\.\d+)?(?![\w-]))
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<op>&&|\|\||==|!=|<=|>=|=~|!~|[!<>()+\-*/%,\[\]])
    | (?P<ident>[A-Za-z_][\w.]*(?:-[\w.]+)*)
    )""", re.VERBOSE)
_IDENT_NO_DASH = re.compile(r"\s*(?P<ident>[A-Za-z_][\w.]*)")


class ExprError(ValueError):
    pass


def tokenize(text: str, dashes: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"cannot parse {text!r} at {text[pos:]!r}")
        kind = m.lastgroup or ""
        if kind == "ident" and not dashes:
            m = _IDENT_NO_DASH.match(text, pos)
            assert m is not None
        value = m.group(kind)
        if kind == "ident" and value in ("and", "or", "not", "matches"):
            kind, value = "op", {"and": "&&", "or": "||", "not": "!", "matches": "=~"}[value]
        out.append((kind, value))
        pos = m.end()
    return out


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return None
    return None


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() not in ("", "false", "0")
    return bool(v)


_ORDER: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                               ">=": operator.ge}


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("=~", "!~"):
        found = re.search(str(b), str(a)) is not None
        return found if op == "=~" else not found
    na, nb = _num(a), _num(b)
    x: Any
    y: Any
    if na is not None and nb is not None:
        x, y = na, nb
    elif isinstance(a, bool) or isinstance(b, bool):
        x, y = _truthy(a), _truthy(b)
    else:
        x, y = str(a), str(b)
    if op == "==":
        return bool(x == y)
    if op == "!=":
        return bool(x != y)
    try:
        return bool(_ORDER[op](x, y))
    except TypeError:
        raise ExprError(f"cannot compare {a!r} {op} {b!r}") from None


def _to_int(v: Any) -> int:
    n = _num(v)
    if n is None:
        raise ExprError(f"not a number: {v!r}")
    return int(n)


def _to_float(v: Any) -> float:
    n = _num(v)
    if n is None:
        raise ExprError(f"not a number: {v!r}")
    return float(n)


FUNCS: dict[str, Callable[..., Any]] = {
    "int": _to_int, "asInt": _to_int, "sprig.int": _to_int, "sprig.atoi": _to_int,
    "sprig.int64": _to_int, "float": _to_float, "asFloat": _to_float, "sprig.float64": _to_float,
    "string": str, "sprig.toString": str, "len": len, "toJson": lambda v: __import__("json").dumps(v),
}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], resolve: Callable[[str], Any]) -> None:
        self.t, self.i, self.resolve = tokens, 0, resolve

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExprError(f"expected {value or 'more input'}, got {tok[1] if tok else 'end'}")
        self.i += 1
        return tok

    def at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] in ops

    def parse(self) -> Any:
        v = self.or_()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return v

    def or_(self) -> Any:
        v = self.and_()
        while self.at("||"):
            self.take()
            rhs = self.and_()
            v = _truthy(v) or _truthy(rhs)
        return v

    def and_(self) -> Any:
        v = self.not_()
        while self.at("&&"):
            self.take()
            rhs = self.not_()
            v = _truthy(v) and _truthy(rhs)
        return v

    def not_(self) -> Any:
        if self.at("!"):
            self.take()
            return not _truthy(self.not_())
        return self.cmp()

    def cmp(self) -> Any:
        v = self.add()
        if self.at("==", "!=", "<", "<=", ">", ">=", "=~", "!~"):
            op = self.take()[1]
            return _compare(op, v, self.add())
        return v

    def add(self) -> Any:
        v = self.mul()
        while self.at("+", "-"):
            op = self.take()[1]
            rhs = self.mul()
            if op == "+" and (_num(v) is None or _num(rhs) is None):
                v = f"{v}{rhs}"
            else:
                a, b = _to_float(v), _to_float(rhs)
                r = a + b if op == "+" else a - b
                v = int(r) if r == int(r) and isinstance(_num(v), int) and isinstance(_num(rhs), int) else r
        return v

    def mul(self) -> Any:
        v = self.unary()
        while self.at("*", "/", "%"):
            op = self.take()[1]
            a, b = _num(v), _num(self.unary())
            if a is None or b is None:
                raise ExprError(f"'{op}' needs numbers")
            if op == "*":
                v = a * b
            elif op == "/":
                v = a / b if b else 0
            else:
                v = a % b
        return v

    def unary(self) -> Any:
        if self.at("-"):
            self.take()
            return -_to_int_or_float(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return int(value) if value.isdigit() else float(value)
        if kind == "str":
            body = value[1:-1]
            return body if value[0] == "`" else re.sub(r"\\(.)", r"\1", body)
        if kind == "op" and value == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind == "ident":
            while self.at("["):  # a['b'] -> a.b
                self.take()
                key = self.primary()
                self.take("]")
                value = f"{value}.{key}"
            if self.at("("):
                self.take()
                args: list[Any] = []
                while not self.at(")"):
                    args.append(self.or_())
                    if self.at(","):
                        self.take()
                self.take(")")
                if value not in FUNCS:
                    raise ExprError(f"unknown function {value!r}")
                return FUNCS[value](*args)
            if value in ("true", "false"):
                return value == "true"
            return self.resolve(value)
        raise ExprError(f"unexpected {value!r}")


def _to_int_or_float(v: Any) -> int | float:
    n = _num(v)
    if n is None:
        raise ExprError(f"not a number: {v!r}")
    return n


def evaluate(text: str, resolve: Callable[[str], Any], dashes: bool = False) -> Any:
    """Evaluate ``text``; identifiers go through ``resolve`` (raise ExprError if unknown)."""
    return _Parser(tokenize(text, dashes), resolve).parse()


def evaluate_when(text: str) -> bool:
    """A substituted ``when``: bare words are strings (``heads == heads``), as in Argo."""
    return _truthy(evaluate(text, lambda name: name))


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)


def depends_names(text: str) -> list[str]:
    """The task names a ``depends`` expression mentions, in order."""
    names: list[str] = []
    for kind, value in tokenize(text, dashes=True):
        if kind == "ident":
            name = value.split(".")[0]
            if name not in names:
                names.append(name)
    return names


RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "Completed",
           "AnySucceeded", "AllFailed")


def evaluate_depends(text: str, result: Callable[[str, str], bool]) -> bool:
    """``result(task, Result)`` answers one operand; a bare task means Succeeded||Skipped||Daemoned."""

    def resolve(ident: str) -> bool:
        task, _, res = ident.partition(".")
        if not res:
            return result(task, "Succeeded") or result(task, "Skipped") or result(task, "Daemoned")
        if res not in RESULTS:
            raise ExprError(f"unknown task result {res!r} in {ident!r} (one of {', '.join(RESULTS)})")
        return result(task, res)

    return _truthy(evaluate(text, resolve, dashes=True))
