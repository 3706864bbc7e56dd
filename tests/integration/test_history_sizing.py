"""Commands that are not PyTorch cannot be estimated: under Auto they are sized from their family's
history (real processes, real cgroups); under Fixed nothing is said about an estimate at all."""

from __future__ import annotations

from tests.integration.helpers import PY, manifest, wait_for

ALLOC = "b = bytearray(40 << 20); b[::4096] = b'x' * len(b[::4096]); print('ok')"


def test_auto_without_factory_is_sized_from_the_family_history(runtime):
    first = manifest("fam-1", [PY, "-c", ALLOC], memory="256Mi")
    first["metadata"]["labels"] = {"jobsched.io/family": "fam"}
    runtime.service.submit(first)
    st = wait_for(runtime.service, "fam-1")
    assert st.phase.value == "Succeeded"
    assert not [e for e in st.events if e.reason in ("NoEstimate", "EstimateFailed", "Estimated")]

    second = manifest("fam-2", [PY, "-c", ALLOC], memoryPolicy="Auto")
    del second["spec"]["template"]["resources"]["requests"]["memory"]  # the queue default stands in
    second["metadata"]["labels"] = {"jobsched.io/family": "fam"}
    runtime.service.submit(second)
    st = wait_for(runtime.service, "fam-2")
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    sized = [e for e in st.events if e.reason == "Sized"]
    assert sized and "sized from the 1 recorded run(s) of family fam" in sized[0].message
    assert not [e for e in st.events if e.reason in ("NoEstimate", "EstimateFailed")]
    chosen = st.sizing.chosen_memory
    assert chosen == st.sizing.recommended_memory and chosen < 2**30  # history, not the 1Gi default
    assert st.attempts[0].resources.requests["memory"] == st.attempts[0].resources.limits["memory"] == chosen


def test_auto_without_factory_or_history_says_so(runtime):
    runtime.service.submit(manifest("lonely", [PY, "-c", "pass"], memory="128Mi", memoryPolicy="Auto"))
    st = wait_for(runtime.service, "lonely")
    assert st.phase.value == "Succeeded"
    sized = [e for e in st.events if e.reason == "Sized"]
    assert sized and "no PyTorch factory to estimate and no recorded run of family lonely yet" in sized[0].message
    assert st.attempts[0].resources.requests["memory"] == 128 * 2**20
