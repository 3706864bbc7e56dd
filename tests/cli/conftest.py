from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.live import live_runtime


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real server (Runtime + app) for a temporary home; JOBSCHED_URL/TOKEN point clients at it."""
    home = tmp_path / "home"
    with live_runtime(home) as (url, token, rt):
        monkeypatch.setenv("JOBSCHED_URL", url)
        monkeypatch.setenv("JOBSCHED_TOKEN", token)
        monkeypatch.setenv("JOBSCHED_HOME", str(home))
        yield rt
