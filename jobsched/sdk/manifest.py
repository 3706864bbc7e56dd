"""Reading manifests from YAML files and validating them locally, with errors that name the file,
the line and the field path (``job.yaml:7: spec.replicas: Input should be greater than or equal
to 1``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from jobsched.sdk.errors import InvalidSpec
from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError, format_validation_error

M = TypeVar("M", bound=BaseModel)


def _node_line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node along ``loc`` in a composed YAML tree."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if node is None:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def load_yaml(path: str | Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """One YAML document as a mapping, and its node tree (for line numbers). Loaded safely and
    within bounds (:mod:`jobsched.spec.yamlsafe`): ``FILE: not valid YAML (why)`` otherwise."""
    p = Path(path)
    try:
        docs = yamlsafe.loads_all(yamlsafe.load_file(p), str(p))
    except SpecError as e:
        raise InvalidSpec(str(e)) from None
    if len(docs) != 1:
        raise InvalidSpec(f"{p}: expected one YAML document, found {len(docs)}")
    data, node = docs[0]
    if not isinstance(data, dict):
        raise InvalidSpec(f"{p}:1: expected a mapping (a manifest), got {type(data).__name__}")
    return data, node


def validate(model: type[M], data: dict[str, Any], source: str | Path | None = None,
             node: yaml.Node | None = None) -> M:
    """``model.model_validate(data)``; a ValidationError becomes InvalidSpec naming each field path
    (prefixed by ``source:line`` when the data came from a file)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        if source is None:
            raise InvalidSpec(format_validation_error(err)) from None
        lines = format_validation_error(err).splitlines()
        out = []
        for text, e in zip(lines, err.errors(), strict=False):
            line = _node_line(node, tuple(e["loc"]))
            out.append(f"{source}:{line}: {text}" if line else f"{source}: {text}")
        raise InvalidSpec("\n".join(out)) from None
    except ValueError as err:  # SpecError raised inside a validator
        raise InvalidSpec(f"{source}: {err}" if source else str(err)) from None


def load_manifest(model: type[M], path: str | Path) -> tuple[M, dict[str, Any]]:
    """Read and validate a manifest file: the model and the raw mapping (what is sent)."""
    data, node = load_yaml(path)
    return validate(model, data, path, node), data
