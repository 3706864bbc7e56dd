"""JSON decoding on the hot paths (watch events, store rows): orjson when installed (a base
dependency; 3-5x faster than the standard library), else the standard library, so that a bare
environment such as the GPU check's still runs."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson

    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    def loads(data: str | bytes) -> Any:
        return json.loads(data)
