from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobsched.server.runtime import Runtime


@pytest.fixture
def make_runtime(tmp_path) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(**backend_options: Any) -> Runtime:
        rt = Runtime(tmp_path / "home", backend_options=backend_options or None)
        rt.start()
        made.append(rt)
        return rt

    yield make
    for rt in made:
        with contextlib.suppress(Exception):
            rt.stop()


@pytest.fixture
def runtime(make_runtime) -> Runtime:
    return make_runtime()
