"""Loop items (``withItems``, ``withParam``, ``withSequence``) without materialising them, and the
limits that bound a workflow's fan-out.

A loop's item count is known once, when the loop starts; items are then produced one at a time by
index (a sequence is arithmetic, never a list), so the engine stores only a counter and a cursor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobsched.workflows.render import substitute, substitute_all

MAX_LOOP_ITEMS = 10_000  # items per loop, unless the server says otherwise
MAX_LIVE_STEPS = 500  # step jobs materialised at once across the whole server
ENV_MAX_LOOP_ITEMS = "JOBSCHED_MAX_LOOP_ITEMS"
ENV_MAX_LIVE_STEPS = "JOBSCHED_MAX_LIVE_STEPS"


@dataclass(frozen=True)
class Limits:
    max_loop_items: int = MAX_LOOP_ITEMS
    max_live_steps: int = MAX_LIVE_STEPS

    @classmethod
    def from_env(cls) -> Limits:
        def read(name: str, default: int) -> int:
            text = os.environ.get(name, "").strip()
            if not text:
                return default
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"{name}: a whole number >= 1, got {text!r}")
            return int(text)

        return cls(read(ENV_MAX_LOOP_ITEMS, MAX_LOOP_ITEMS), read(ENV_MAX_LIVE_STEPS, MAX_LIVE_STEPS))


class LoopTooLarge(ValueError):
    """The loop has more items than the server allows; the message names the field."""


def _int(text: str, field: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{field}: not an integer: {text[:100]!r}") from None


def _too_large(field: str, n: int, limit: int) -> LoopTooLarge:
    return LoopTooLarge(f"{field}: {n} items exceed the limit of {limit} per loop "
                        f"(server setting --max-loop-items / {ENV_MAX_LOOP_ITEMS})")


def sequence_bounds(seq: Any, resolve: Callable[[str], str], limit: int,
                    field: str = "withSequence") -> tuple[int, int, int]:
    """(start, step, count) of a ``withSequence``; LoopTooLarge past ``limit`` items."""
    start = _int(resolve(seq.start or "0"), f"{field}.start")
    if seq.end is not None:
        end = _int(resolve(seq.end), f"{field}.end")
        step = 1 if end >= start else -1
        n, where = abs(end - start) + 1, f"{field}.end"
    else:
        n, step, where = _int(resolve(seq.count or "0"), f"{field}.count"), 1, f"{field}.count"
        if n < 0:
            raise ValueError(f"{where}: must not be negative, got {n}")
    if n > limit:
        raise _too_large(where, n, limit)
    return start, step, n


class Items:
    """The items of one loop, by index: ``len(items)`` and ``items[i]``, nothing materialised for a
    sequence. ``withItems`` and ``withParam`` lists are as large as the manifest or the parameter
    text they come from, and are checked against the same limit."""

    def __init__(self, inv: Any, scope: dict[str, str], limit: int) -> None:
        self._list: list[Any] | None = None
        self._seq: tuple[int, int, int] | None = None
        self._format: str | None = None
        if inv.with_items is not None:
            if len(inv.with_items) > limit:
                raise _too_large("withItems", len(inv.with_items), limit)
            self._list = list(substitute_all(inv.with_items, scope))
        elif inv.with_param is not None:
            text = substitute(inv.with_param, scope)
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"withParam: not a JSON list: {text[:200]!r}") from None
            if not isinstance(items, list):
                raise ValueError(f"withParam: not a JSON list: {text[:200]!r}")
            if len(items) > limit:
                raise _too_large("withParam", len(items), limit)
            self._list = items
        else:
            seq = inv.with_sequence
            assert seq is not None
            self._seq = sequence_bounds(seq, lambda t: substitute(t, scope), limit)
            self._format = seq.format

    def __len__(self) -> int:
        return len(self._list) if self._list is not None else self._seq[2] if self._seq else 0

    def __getitem__(self, i: int) -> Any:
        if self._list is not None:
            return self._list[i]
        assert self._seq is not None
        value = self._seq[0] + self._seq[1] * i
        return (self._format % value) if self._format else str(value)


def check_static(path: str, inv: Any, parameters: dict[str, str], limit: int) -> list[str]:
    """Lint: a loop whose size is known at submit (literals, workflow parameters) over ``limit``."""
    if inv.with_items is not None and len(inv.with_items) > limit:
        return [str(_too_large(f"{path}.withItems", len(inv.with_items), limit))]
    seq = inv.with_sequence
    if seq is None:
        return []
    scope = {f"workflow.parameters.{k}": v for k, v in parameters.items()}

    def resolve(text: str) -> str:
        out = substitute(text, scope, strict=False)
        if "{{" in out:
            raise LookupError  # known only at run time
        return out

    try:
        sequence_bounds(seq, resolve, limit, f"{path}.withSequence")
    except LookupError:
        return []
    except ValueError as e:
        return [str(e)]
    return []
