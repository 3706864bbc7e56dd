"""The functions of Argo's expression language (expr-lang plus ``sprig.*``) that jobsched evaluates.

Argo evaluates ``{{=...}}``, ``when`` and ``retryStrategy.expression`` with expr-lang and exposes the
sprig library as ``sprig.NAME``; this is the subset that appears in Argo's examples and docs. A name
not listed here is an error at lint (``unknown function``), so lint predicts what runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any


class FuncError(ValueError):
    pass


def num(v: Any) -> float | int | None:
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


def to_int(v: Any) -> int:
    n = num(v)
    if n is None:
        raise FuncError(f"not a number: {v!r}")
    return int(n)


def to_float(v: Any) -> float:
    n = num(v)
    if n is None:
        raise FuncError(f"not a number: {v!r}")
    return float(n)


def _from_json(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except json.JSONDecodeError as e:
        raise FuncError(f"not JSON: {v!r} ({e.msg})") from None


def _to_json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)  # as Go's encoding/json


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\*|'[^']*'|\"[^\"]*\")\]|\.\*")


def jsonpath(doc: Any, path: str) -> Any:
    """``jsonpath(json, '$.a.b[0]')`` as Argo's expression function: ``$``, ``.key``, ``['key']``,
    ``[n]``, ``[*]`` / ``.*`` (which yields a list)."""
    value = _from_json(doc)
    path = str(path).strip()
    if not path.startswith("$"):
        raise FuncError(f"jsonpath: a path starts with '$', got {path!r}")
    pos, values, many = 1, [value], False
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:
            raise FuncError(f"jsonpath: cannot parse {path!r} at {path[pos:]!r}")
        key = m.group(1) or m.group(2)
        nxt: list[Any] = []
        for v in values:
            if key is None or key == "*":
                many = True
                nxt.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
            elif key.isdigit():
                if isinstance(v, list) and int(key) < len(v):
                    nxt.append(v[int(key)])
            else:
                k = key.strip("'\"")
                if isinstance(v, dict) and k in v:
                    nxt.append(v[k])
        values, pos = nxt, m.end()
    if many:
        return values
    if not values:
        raise FuncError(f"jsonpath: {path!r} matched nothing")
    return values[0]


def _default(default: Any, value: Any = None) -> Any:
    return default if value in (None, "", [], {}, 0, False) else value


def _ternary(a: Any, b: Any, cond: Any) -> Any:
    return a if cond else b


def _split(s: Any, sep: Any) -> dict[str, str]:
    return {f"_{i}": p for i, p in enumerate(str(s).split(str(sep)))}


_GO_LAYOUT = [("January", "%B"), ("Monday", "%A"), ("2006", "%Y"), ("Jan", "%b"), ("Mon", "%a"),
              ("MST", "%Z"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"), ("04", "%M"),
              ("05", "%S"), ("06", "%y"), ("PM", "%p")]


def go_date(layout: Any, when: Any) -> str:
    """``sprig.date(layout, time)``: a Go layout (``2006-01-02``) applied to an RFC 3339 time or a
    Unix timestamp."""
    from datetime import UTC, datetime

    if isinstance(when, (int, float)) or (isinstance(when, str) and num(when) is not None):
        t = datetime.fromtimestamp(float(when), UTC)
    else:
        try:
            t = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        except ValueError:
            raise FuncError(f"not a time: {when!r}") from None
    out, text = "", str(layout)
    while text:
        for go, py in _GO_LAYOUT:
            if text.startswith(go):
                out, text = out + t.strftime(py), text[len(go):]
                break
        else:
            out, text = out + text[0].replace("%", "%%"), text[1:]
    return out


def _seq(xs: Any) -> list[Any]:
    v = jsonish(xs)
    return list(v) if isinstance(v, (list, dict)) else [v]


def _truthy(v: Any) -> bool:
    return v.strip().lower() not in ("", "false", "0") if isinstance(v, str) else bool(v)


FUNCS: dict[str, Callable[..., Any]] = {
    "filter": lambda xs, f: [x for x in _seq(xs) if _truthy(f(x))],
    "map": lambda xs, f: [f(x) for x in _seq(xs)],
    "all": lambda xs, f: all(_truthy(f(x)) for x in _seq(xs)),
    "any": lambda xs, f: any(_truthy(f(x)) for x in _seq(xs)),
    "none": lambda xs, f: not any(_truthy(f(x)) for x in _seq(xs)),
    "one": lambda xs, f: sum(1 for x in _seq(xs) if _truthy(f(x))) == 1,
    "count": lambda xs, f: sum(1 for x in _seq(xs) if _truthy(f(x))),
    "int": to_int, "asInt": to_int, "float": to_float, "asFloat": to_float, "string": str,
    "len": len, "toJson": _to_json, "fromJson": _from_json, "jsonpath": jsonpath,
    "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper(),
    "trim": lambda s: str(s).strip(), "split": lambda s, sep: str(s).split(str(sep)),
    "join": lambda xs, sep: str(sep).join(str(x) for x in _from_json(xs)),
    "abs": lambda x: abs(to_float(x)) if isinstance(num(x), float) else abs(to_int(x)),
    "max": lambda *xs: max(num(x) or 0 for x in xs), "min": lambda *xs: min(num(x) or 0 for x in xs),
}
SPRIG: dict[str, Callable[..., Any]] = {
    "int": to_int, "atoi": to_int, "int64": to_int, "float64": to_float, "toString": str,
    "trim": lambda s: str(s).strip(), "trimAll": lambda c, s: str(s).strip(str(c)),
    "trimPrefix": lambda p, s: str(s).removeprefix(str(p)),
    "trimSuffix": lambda p, s: str(s).removesuffix(str(p)),
    "upper": lambda s: str(s).upper(), "lower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(), "repeat": lambda n, s: str(s) * to_int(n),
    "replace": lambda old, new, s: str(s).replace(str(old), str(new)),
    "contains": lambda sub, s: str(sub) in str(s), "hasPrefix": lambda p, s: str(s).startswith(str(p)),
    "hasSuffix": lambda p, s: str(s).endswith(str(p)), "quote": lambda s: json.dumps(str(s)),
    "squote": lambda s: f"'{s}'", "toJson": _to_json, "toPrettyJson": lambda v: json.dumps(v, indent=2),
    "fromJson": _from_json, "default": _default, "empty": lambda v: _default(True, v) is True,
    "ternary": _ternary, "add": lambda *xs: sum(to_int(x) for x in xs),
    "sub": lambda a, b: to_int(a) - to_int(b), "mul": lambda a, b: to_int(a) * to_int(b),
    "div": lambda a, b: to_int(a) // to_int(b), "mod": lambda a, b: to_int(a) % to_int(b),
    "max": lambda *xs: max(to_int(x) for x in xs), "min": lambda *xs: min(to_int(x) for x in xs),
    "split": _split, "splitList": lambda sep, s: str(s).split(str(sep)),
    "join": lambda sep, xs: str(sep).join(str(x) for x in xs), "list": lambda *xs: list(xs),
    "dict": lambda *kv: {str(kv[i]): kv[i + 1] for i in range(0, len(kv) - 1, 2)},
    "b64enc": lambda s: __import__("base64").b64encode(str(s).encode()).decode(),
    "b64dec": lambda s: __import__("base64").b64decode(str(s)).decode(),
    "date": go_date, "now": lambda: __import__("time").time(),
    "regexMatch": lambda rx, s: re.search(str(rx), str(s)) is not None,
    "regexFind": lambda rx, s: (m.group(0) if (m := re.search(str(rx), str(s))) else ""),
    "regexReplaceAll": lambda rx, s, r: re.sub(str(rx), str(r).replace("$", "\\"), str(s)),
}


def lookup(name: str) -> Callable[..., Any] | None:
    if name.startswith("sprig."):
        return SPRIG.get(name.removeprefix("sprig."))
    return FUNCS.get(name)


def jsonish(v: Any) -> Any:
    """The right side of ``in``: a list, a map, or a JSON string of one."""
    if isinstance(v, str) and v[:1] in ("[", "{"):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v
