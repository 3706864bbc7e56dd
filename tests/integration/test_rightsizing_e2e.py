"""Right-sizing end to end on the local backend (real processes in memory cgroups, real torch)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.helpers import PY, manifest, wait_for

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.torch]
ROOT = Path(__file__).resolve().parents[2]
FACTORY = "tests.integration.fat_model:factory"


def fat_job(name: str, policy: str, **spec) -> dict:
    m = manifest(name, [PY, "-m", "tests.integration.fat_model", "3"], memory="256Mi", memoryPolicy=policy,
                 rightSizing={"factory": FACTORY}, **spec)
    m["spec"]["template"]["workingDir"] = str(ROOT)
    return m


def test_auto_sizes_from_the_estimate_and_succeeds_first_time(runtime):
    runtime.service.submit(fat_job("fat-auto", "Auto"))
    st = wait_for(runtime.service, "fat-auto", timeout=300)
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    assert len(st.attempts) == 1 and st.attempts[0].reason == "Completed"
    sz = st.sizing
    assert sz.declared_memory == 256 * 2**20
    assert sz.estimated_memory and sz.estimated_memory > 400 * 2**20
    assert sz.chosen_memory >= sz.estimated_memory > sz.declared_memory
    assert st.attempts[0].resources.requests["memory"] == sz.chosen_memory
    assert {"parameters", "gradients", "optimizer_state", "activations_peak", "baseline"} <= set(sz.breakdown)
    assert any(e.reason == "Sized" for e in st.events)


def test_fixed_is_admitted_as_declared_with_a_warning_then_resized(runtime):
    runtime.service.submit(fat_job("fat-fixed", "Fixed", maxRetries=6))
    st = wait_for(runtime.service, "fat-fixed", timeout=400)
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    reasons = [a.reason for a in st.attempts]
    assert reasons[0] == "OOMKilled" and reasons[-1] == "Completed"
    limits = [a.resources.limits["memory"] for a in st.attempts]
    assert limits[0] == 256 * 2**20 and limits == sorted(set(limits))  # never retried at one size
    # Under Fixed the job does not wait for its estimate: the warning may come after it finished.
    deadline = time.monotonic() + 300
    while not any(e.reason == "MemoryBelowEstimate" for e in st.events):
        assert time.monotonic() < deadline, [(e.reason, e.message) for e in st.events]
        time.sleep(0.2)
        st = runtime.service.get("default", "fat-fixed")
