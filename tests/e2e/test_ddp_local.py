"""A 2-replica gloo DDP job under the local backend completes and its loss decreases (issue: workers),
and a gang killed mid-run resumes from its checkpoint through the scheduler."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jobsched.server.runtime import Runtime
from tests.integration.helpers import wait_for

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.torch]
ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"\[rank (\d)\] step=(\d+) loss=([0-9.]+)")


def test_ddp_mlp_example_converges_under_the_local_backend(tmp_path):
    rt = Runtime(tmp_path / "home")
    rt.start()
    try:
        m = yaml.safe_load((ROOT / "examples" / "ddp-mlp.yaml").read_text())
        m["spec"]["template"]["workingDir"] = str(ROOT)
        m["spec"]["template"]["args"] = [a if a != "200" else "120" for a in m["spec"]["template"]["args"]]
        rt.service.submit(m)
        st = wait_for(rt.service, "ddp-mlp", timeout=300)
        # All attempts' logs: on a busy machine an attempt may be retried, and the next one resumes
        # from the checkpoint, so the loss series continues across attempts.
        text = "".join(rt.service.logs("default", "ddp-mlp", attempt=a.index)[0] for a in st.attempts)
        why = [(a.index, a.reason, a.exit_code, a.message) for a in st.attempts]
        assert st.phase.value == "Succeeded", (why, text[-2000:])
        per_rank: dict[str, list[tuple[int, float]]] = {}
        for rank, step, loss in LINE.findall(text):
            per_rank.setdefault(rank, []).append((int(step), float(loss)))
        assert set(per_rank) == {"0", "1"}, (why, text[-2000:])
        for series in per_rank.values():
            series.sort()
            assert series[-1][1] < series[0][1] * 0.9  # the loss goes down on every replica
    finally:
        rt.stop()
