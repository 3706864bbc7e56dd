"""The examples double as tests: each runs on the embedded default and ends as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobsched.server.runtime import Runtime
from tests.integration.helpers import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = Runtime(tmp_path_factory.mktemp("home"))
    runtime.start()
    yield runtime
    runtime.stop()


def submit(rt, name):
    m = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    rt.service.submit(m)
    return wait_for(rt.service, m["metadata"]["name"], timeout=120)


def test_hello(rt):
    st = submit(rt, "hello")
    assert st.phase.value == "Succeeded"
    assert "hello from rank 0 of 1" in rt.service.logs("default", "hello")[0]


def test_gang(rt):
    st = submit(rt, "gang")
    assert st.phase.value == "Succeeded"
    text = rt.service.logs("default", "gang")[0]
    assert "rank 0 got: hello from rank 1" in text and "rank 1/2 done" in text


def test_over_memory(rt):
    st = submit(rt, "over-memory")
    assert st.phase.value == "Failed"
    (a,) = st.attempts
    assert a.reason == "OOMKilled"
    assert a.peak_memory_bytes >= a.resources.limits["memory"] == 100 * 2**20


def test_oom_resize(rt):
    st = submit(rt, "oom-resize")
    assert st.phase.value == "Succeeded"
    assert [a.reason for a in st.attempts] == ["OOMKilled", "Completed"]
    assert "resuming at step 0" not in rt.service.logs("default", "oom-resize", attempt=1)[0]
