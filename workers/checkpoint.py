"""Atomic checkpoint files ``ckpt-<step:08d><suffix>`` in a directory (serializer passed in).

A checkpoint is written to a hidden temporary file in the same directory, flushed and fsynced, then
renamed over the final name with ``os.replace``, so a reader never sees a partial file even if the
writer is SIGKILLed. Resuming takes the newest checkpoint that loads; an unreadable one (a torn disk,
a foreign file) is reported and skipped in favour of the one before it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TORCH_SUFFIX = ".pt"
MXNET_SUFFIX = ".mxnet"
_NAME = re.compile(r"^ckpt-(\d{8,})(\.[A-Za-z0-9.]+)$")


def path_for(directory: str | Path, step: int, suffix: str = TORCH_SUFFIX) -> Path:
    return Path(directory) / f"ckpt-{step:08d}{suffix}"


def list_checkpoints(directory: str | Path, suffix: str = TORCH_SUFFIX) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m and m.group(2) == suffix:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save(directory: str | Path, step: int, write: Callable[[Path], None], suffix: str = TORCH_SUFFIX,
         keep: int = 3) -> Path:
    """Write checkpoint ``step`` atomically with ``write(tmp_path)``; keep the newest ``keep``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    final = path_for(d, step, suffix)
    tmp = d / f".{final.name}.tmp-{os.getpid()}"
    for stale in d.glob(f".ckpt-*{suffix}.tmp-*"):  # left by a writer killed mid-write (one writer: rank 0)
        stale.unlink(missing_ok=True)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    if keep > 0:
        for _, old in list_checkpoints(d, suffix)[:-keep]:
            old.unlink(missing_ok=True)
    return final


def load_latest(directory: str | Path | None, read: Callable[[Path], Any],
                suffix: str = TORCH_SUFFIX) -> tuple[int, Any] | None:
    """(step, state) of the newest readable checkpoint, or None when there is none."""
    if directory is None:
        return None
    for step, p in reversed(list_checkpoints(directory, suffix)):
        try:
            return step, read(p)
        except Exception as e:  # a truncated or foreign file: fall back to the previous checkpoint
            print(f"warning: skipping unreadable checkpoint {p.name}: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
    return None
