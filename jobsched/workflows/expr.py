"""The small expression language of ``when``, ``depends``, ``retryStrategy.expression`` and ``{{=...}}``.

A recursive-descent parser over tokens (no ``eval``): literals (numbers, quoted strings, true/false),
identifiers resolved by a callback, ``! && || == != < <= > >= =~ !~ matches in contains startsWith
endsWith + - * / %``, the
ternary ``c ? a : b``, parentheses, and the functions of :mod:`jobsched.workflows.exprfuncs`
(``asInt``, ``jsonpath``, ``sprig.trim``, ...). :func:`check` parses without resolving anything: lint
calls it on every expression the engine will evaluate, so what lint accepts parses at run time.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from jobsched.workflows import exprfuncs

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>\d+(?:\.\d+)?(?![\w-]))
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<op>&&|\|\||==|!=|<=|>=|=~|!~|[!<>()+\-*/%,\[\]?:{}\#])
    | (?P<ident>[A-Za-z_][\w.]*(?:-[\w.]+)*)
    | (?P<member>\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
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
        if kind == "ident" and value in ("and", "or", "not", "matches", "in", "contains", "startsWith",
                                         "endsWith"):
            kind, value = "op", {"and": "&&", "or": "||", "not": "!", "matches": "=~"}.get(value, value)
        out.append((kind, value))
        pos = m.end()
    return out


_num = exprfuncs.num


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


def _to_float(v: Any) -> float:
    try:
        return exprfuncs.to_float(v)
    except exprfuncs.FuncError as e:
        raise ExprError(str(e)) from None


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], resolve: Callable[[str], Any] | None) -> None:
        self.t, self.i, self.resolve = tokens, 0, resolve
        self.skip = 1 if resolve is None else 0  # >0: parse only (an untaken branch, or check())
        self.hash: Any = None  # '#' inside a closure: the current element

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
        v = self.ternary()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return v

    def lazy(self, taken: bool, parse: Callable[[], Any]) -> Any:
        """Parse a branch; evaluate it only when ``taken`` (Argo short-circuits)."""
        if not taken:
            self.skip += 1
        try:
            return parse()
        finally:
            if not taken:
                self.skip -= 1

    def ternary(self) -> Any:
        cond = self.or_()
        if not self.at("?"):
            return cond
        self.take()
        yes = _truthy(cond)
        a = self.lazy(yes, self.ternary)
        self.take(":")
        b = self.lazy(not yes, self.ternary)
        return a if yes else b

    def or_(self) -> Any:
        v = self.and_()
        while self.at("||"):
            self.take()
            rhs = self.lazy(not _truthy(v), self.and_)
            v = _truthy(v) or _truthy(rhs)
        return v

    def and_(self) -> Any:
        v = self.not_()
        while self.at("&&"):
            self.take()
            rhs = self.lazy(_truthy(v), self.not_)
            v = _truthy(v) and _truthy(rhs)
        return v

    def not_(self) -> Any:
        if self.at("!"):
            self.take()
            return not _truthy(self.not_())
        return self.cmp()

    def cmp(self) -> Any:
        v = self.add()
        if self.at("==", "!=", "<", "<=", ">", ">=", "=~", "!~", "in", "contains", "startsWith", "endsWith"):
            op = self.take()[1]
            rhs = self.add()
            if self.skip:
                return False
            if op == "in":
                return v in (exprfuncs.jsonish(rhs))
            if op in ("contains", "startsWith", "endsWith"):  # expr-lang's string operators
                a, b = "" if v is None else str(v), "" if rhs is None else str(rhs)
                return b in a if op == "contains" else a.startswith(b) if op == "startsWith" else a.endswith(b)
            return _compare(op, v, rhs)
        return v

    def add(self) -> Any:
        v = self.mul()
        while self.at("+", "-"):
            op = self.take()[1]
            rhs = self.mul()
            if self.skip:
                continue
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
            if self.skip:
                continue
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
            v = self.unary()
            return 0 if self.skip else -_to_int_or_float(v)
        return self.postfix(self.primary())

    def postfix(self, v: Any) -> Any:
        """``x[0]``, ``x['k']``, ``x.k`` on a value (a call's result, ``#``, a literal)."""
        while self.at("[") or (self.peek() or ("", ""))[0] == "member":
            if self.take()[1] == "[":
                key = self.ternary()
                self.take("]")
                keys = [key]
            else:
                keys = self.t[self.i - 1][1].split(".")[1:]
            for k in keys:
                v = None if self.skip else _index(v, k)
        return v

    def closure(self) -> Closure:
        """``{...}`` as a function argument: a predicate over ``#`` (filter, map, all, any...)."""
        start, depth = self.i, 1
        while depth:
            kind, value = self.take()
            depth += {"{": 1, "}": -1}.get(value, 0) if kind == "op" else 0
        body = self.t[start:self.i - 1]
        _Parser(body, None).parse()  # its syntax, now (lint)
        return Closure(body, self.resolve)

    def map_literal(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while not self.at("}"):
            kind, key = self.take()
            self.take(":")
            out[key[1:-1] if kind == "str" else key] = self.ternary()
            if self.at(","):
                self.take()
        self.take("}")
        return out

    def is_map_literal(self) -> bool:
        nxt = self.t[self.i + 1] if self.i + 1 < len(self.t) else ("", "")
        return self.at("}") or ((self.peek() or ("", ""))[0] in ("ident", "str") and nxt[1] == ":")

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return int(value) if value.isdigit() else float(value)
        if kind == "str":
            body = value[1:-1]
            return body if value[0] == "`" else re.sub(r"\\(.)", r"\1", body)
        if kind == "op" and value == "(":
            v = self.ternary()
            self.take(")")
            return v
        if kind == "op" and value == "#":
            return None if self.skip else self.hash
        if kind == "op" and value == "{":
            if self.is_map_literal():
                return self.map_literal()
            return self.closure()
        if kind == "op" and value == "[":  # a list literal
            items: list[Any] = []
            while not self.at("]"):
                items.append(self.ternary())
                if self.at(","):
                    self.take()
            self.take("]")
            return items
        if kind == "ident":
            while self.at("[") or (self.peek() or ("", ""))[0] == "member":  # a['b'].c -> a.b.c
                if self.take()[1] == "[":
                    key = self.primary()
                    self.take("]")
                    value = f"{value}.{key}"
                else:
                    value += self.t[self.i - 1][1]
            if self.at("("):
                self.take()
                args: list[Any] = []
                while not self.at(")"):
                    args.append(self.ternary())
                    if self.at(","):
                        self.take()
                self.take(")")
                fn = exprfuncs.lookup(value)
                if fn is None:
                    raise ExprError(f"unknown function {value!r}")
                if self.skip:
                    return ""
                try:
                    return fn(*args)
                except (exprfuncs.FuncError, TypeError, ValueError, KeyError, IndexError) as e:
                    raise ExprError(f"{value}(): {e}") from None
            if value in ("true", "false"):
                return value == "true"
            if value in ("nil", "null"):
                return None
            if self.skip or self.resolve is None:
                return ""
            return self.resolve(value)
        raise ExprError(f"unexpected {value!r}")


class Closure:
    """A ``{...}`` predicate; calling it evaluates the body with ``#`` bound to the argument."""

    def __init__(self, tokens: list[tuple[str, str]], resolve: Callable[[str], Any] | None) -> None:
        self.tokens, self.resolve = tokens, resolve

    def __call__(self, item: Any) -> Any:
        p = _Parser(self.tokens, self.resolve)
        p.hash = item
        return p.parse()


def _index(v: Any, key: Any) -> Any:
    v = exprfuncs.jsonish(v)
    try:
        if isinstance(v, list):
            return v[int(key)]
        if isinstance(v, dict):
            return v[str(key)]
    except (IndexError, KeyError, ValueError):
        raise ExprError(f"no element {key!r} in {v!r}") from None
    raise ExprError(f"cannot index {v!r} with {key!r}")


def _to_int_or_float(v: Any) -> int | float:
    n = _num(v)
    if n is None:
        raise ExprError(f"not a number: {v!r}")
    return n


def evaluate(text: str, resolve: Callable[[str], Any], dashes: bool = False) -> Any:
    """Evaluate ``text``; identifiers go through ``resolve`` (raise ExprError if unknown)."""
    return _Parser(tokenize(text, dashes), resolve).parse()


def check(text: str, dashes: bool = False) -> None:
    """Parse ``text`` as :func:`evaluate` would, resolving nothing; raise :class:`ExprError`."""
    _Parser(tokenize(text, dashes), None).parse()


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
