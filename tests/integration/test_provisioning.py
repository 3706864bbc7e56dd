"""Node right-sizing in the live server (local backend + virtual nodes from a node pool):
the cheapest fitting nodes are added for a pending gang, jobs are charged, empty nodes go away."""

from __future__ import annotations

import time

import pytest

from jobsched.server.runtime import Runtime
from tests.integration.helpers import PY, manifest, wait_for

pytestmark = pytest.mark.slow

POOL = """
name: pool
emptyTtlSeconds: 1
instanceTypes:
  - {name: small, cpu: 2, memory: 2Gi, pricePerHour: 1.0, maxCount: 4}
  - {name: large, cpu: 8, memory: 8Gi, pricePerHour: 3.0, maxCount: 2}
"""


@pytest.fixture
def rt(tmp_path):
    (tmp_path / "pool.yaml").write_text(POOL)
    r = Runtime(tmp_path / "home", backend_options={"nodes_config": [{"name": "base", "cpu": 1, "memory": "1Gi"}]},
                node_pool=tmp_path / "pool.yaml", provision_delay=0.5)
    r.start()
    yield r
    r.stop()


def test_cheapest_nodes_are_added_for_a_pending_gang_and_removed_when_empty(rt):
    # 2 replicas x 2 CPUs: two `small` ($2/h) beat one `large` ($3/h); `base` has 1 CPU.
    rt.service.submit(manifest("wide", [PY, "-c", "import time; time.sleep(1.5)"], cpu="2", memory="512Mi",
                               replicas=2))
    st = wait_for(rt.service, "wide", timeout=60)
    assert st.phase.value == "Succeeded"
    nodes = st.attempts[0].nodes
    assert len(nodes) == 2 and all("small" in n for n in nodes) and len(set(nodes)) == 2
    assert any("provisioning 2 x small" in e.message for e in st.events)
    assert st.cost > 0
    deadline = time.monotonic() + 20
    while any("small" in n.name for n in rt.service.nodes()):
        assert time.monotonic() < deadline, "empty provisioned nodes were not consolidated"
        time.sleep(0.2)
    assert [n.name for n in rt.service.nodes()] == ["base"]


def test_gang_too_big_for_any_pool_type_is_rejected(rt):
    rt.service.submit(manifest("huge", [PY, "-c", "pass"], cpu="16", memory="512Mi"))
    st = wait_for(rt.service, "huge", timeout=30)
    assert st.phase.value == "Failed" and "can never fit" in (st.message or "")
