"""Loading user YAML safely: every manifest, workflow, queue, node-pool and node-list file, and every
YAML or JSON text a user hands jobsched, goes through :func:`loads` (or :func:`load_file`).

* Safe: plain data only (``yaml.SafeLoader``); a tag outside YAML's core schema (``!!python/object``,
  ``!foo``) is an error, and so are ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs``, which have no
  JSON form; timestamps stay strings (as Kubernetes reads YAML).
* Bounded: at most :data:`MAX_BYTES` (4 MiB) of text, :data:`MAX_ALIASES` alias uses, nesting
  :data:`MAX_DEPTH` deep, and :data:`MAX_NODES` nodes once aliases are expanded; recursive aliases
  are refused. An alias bomb ("billion laughs") is refused after composing, before anything is
  built from it: in milliseconds, whatever it would expand to.
* Errors: one :class:`~jobsched.spec.errors.SpecError`: ``FILE:LINE:COL: malformed YAML: problem``
  for a syntax error, else ``FILE: not valid YAML (why)``, also for binary or non-UTF-8 input, an
  unknown tag or a cap exceeded. Never a traceback.
"""

from __future__ import annotations

from typing import Any

import yaml
import yaml.composer
import yaml.parser
import yaml.reader
import yaml.scanner
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

from jobsched.spec.errors import SpecError

MAX_BYTES = 4 << 20
MAX_ALIASES = 1000
MAX_DEPTH = 100
MAX_NODES = 1_000_000


class _Refused(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts alias uses and nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _plain_timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _no_json_form(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise ConstructorError(None, None, f"tag {node.tag!r} is not supported (no JSON form)", node.start_mark)


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _plain_timestamp)
for _tag in ("binary", "set", "omap", "pairs"):
    _BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _no_json_form)


def expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is expanded (capped just above MAX_NODES); raises
    _Refused for a recursive alias. Iterative, memoized per node: linear in the composed graph."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            active.discard(key)
            sizes[key] = min(1 + sum(sizes[id(k)] for k in kids), MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in active:
            raise _Refused("a recursive alias")
        active.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in active:
                raise _Refused("a recursive alias")
            if id(kid) not in sizes:
                stack.append((kid, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _decode(data: bytes | str, source: str) -> str:
    if len(data) > MAX_BYTES:
        raise SpecError(f"not valid YAML (larger than {MAX_BYTES >> 20} MiB)", source)
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(f"not valid YAML (not UTF-8 text: byte 0x{data[e.start]:02x} at offset "
                        f"{e.start}; a binary file?)", source) from None


def _why(err: BaseException) -> str:
    if isinstance(err, _Refused):
        return str(err)
    if isinstance(err, yaml.reader.ReaderError):
        return f"position {err.position}: character #x{err.character:04x} is not allowed"
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{err.problem or err.context or 'malformed'}"
    if isinstance(err, RecursionError):
        return "nested too deeply"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 100 else text[:97] + "..."


def loads_all(data: bytes | str, source: str = "<input>") -> list[tuple[Any, yaml.Node]]:
    """Every document in ``data`` as (plain data, composed node tree for line numbers)."""
    text = _decode(data, source)
    loader: _BoundedLoader | None = None
    out: list[tuple[Any, yaml.Node]] = []
    try:
        loader = _BoundedLoader(text)  # checks for unprintable characters (NUL, ...)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if expanded_size(node) > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} nodes once aliases are expanded (an alias bomb?)")
            out.append((loader.construct_document(node), node))
    except (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.composer.ComposerError) as e:
        mark = e.problem_mark  # a syntax error: where, as the other messages in docs/cli.md
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SpecError(f"malformed YAML: {e.problem or e.context}", where) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as e:
        raise SpecError(f"not valid YAML ({_why(e)})", source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return out


def loads(data: bytes | str, source: str = "<input>") -> tuple[Any, yaml.Node | None]:
    """The one document in ``data`` (None for an empty one) and its node tree."""
    docs = loads_all(data, source)
    if len(docs) > 1:
        raise SpecError(f"expected one YAML document, found {len(docs)}", source)
    return docs[0] if docs else (None, None)


def load_file(path: Any) -> bytes:
    """The bytes of a YAML file, at most MAX_BYTES (+1, so that :func:`loads` names the cap); the
    only file access in jobsched.spec. SpecError ``FILE: cannot read: ...``."""
    try:
        with open(path, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror or e}", str(path)) from None
