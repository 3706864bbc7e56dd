"""Log-in codes and sessions (expiry on an injected clock), and the workflow graph's layout."""

from __future__ import annotations

from jobsched.dashboard import dag
from jobsched.dashboard.sessions import Sessions
from jobsched.workflows.state import NodeStatus, WorkflowState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_code_opens_one_session_and_expires():
    clock = Clock()
    s = Sessions(clock, code_ttl=60, session_ttl=3600)
    code = s.mint_code()
    session = s.redeem(code)
    assert session is not None and s.get(session.id) == session
    assert s.redeem(code) is None  # single use
    late = s.mint_code()
    clock.now += 61
    assert s.redeem(late) is None  # expired
    assert s.get(session.id) is not None
    clock.now += 3600
    assert s.get(session.id) is None  # the session expired too
    assert s.redeem("") is None and s.get("") is None and s.get(None) is None


def test_csrf_must_match_the_session():
    s = Sessions()
    a, b = s.open(), s.open()
    assert Sessions.csrf_ok(a, a.csrf)
    assert not Sessions.csrf_ok(a, b.csrf) and not Sessions.csrf_ok(a, "") and not Sessions.csrf_ok(a, None)


def _wf(manifest_tasks, nodes) -> WorkflowState:
    manifest = {"spec": {"templates": [{"name": "main", "dag": {"tasks": manifest_tasks}}]}}
    st = WorkflowState(name="wf", uid="u", manifest=manifest, created_at=0.0)
    for name, type_, parent, phase in nodes:
        st.nodes[name] = NodeStatus(id=name, name=name, display_name=name.split(".")[-1], type=type_,
                                    template="main" if type_ == "DAG" else "leaf", parent=parent, phase=phase)
        if parent:
            st.nodes[parent].children.append(name)
    return st


def test_a_diamond_is_drawn_in_three_layers_below_its_dag():
    tasks = [{"name": "a"}, {"name": "b", "dependencies": ["a"]}, {"name": "c", "depends": "a"},
             {"name": "d", "depends": "b && c.Succeeded"}]
    st = _wf(tasks, [("wf", "DAG", None, "Running"), ("wf.a", "Pod", "wf", "Succeeded"),
                     ("wf.b", "Pod", "wf", "Succeeded"), ("wf.c", "Pod", "wf", "Failed"),
                     ("wf.d", "Pod", "wf", "Pending")])
    assert sorted(dag.edges(st)) == [("wf", "wf.a"), ("wf.a", "wf.b"), ("wf.a", "wf.c"),
                                     ("wf.b", "wf.d"), ("wf.c", "wf.d")]
    g = dag.layout(st)
    y = {b.name: b.y for b in g["boxes"]}
    assert y["wf"] < y["wf.a"] < y["wf.b"] == y["wf.c"] < y["wf.d"]
    assert len(g["edges"]) == 5
    assert {b.name: b.phase for b in g["boxes"]}["wf.c"] == "Failed"
    assert dag.phase_class("Succeeded") == "ph-succeeded" and dag.phase_class('x" onload=') == "ph-xonload"


def test_node_and_queue_gauges():
    from jobsched.dashboard import views
    from jobsched.spec.api import NodeStatus as ApiNode
    from jobsched.spec.api import QueueStatus

    gpu = ApiNode(name="g1", gpu_model="NVIDIA H100", gpu_memory=80 * 2**30,
                  allocatable={"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": 4},
                  allocated={"cpu": 2500, "memory": 16 * 2**30, "nvidia.com/gpu": 1, "jobsched.io/gpu-milli": 1500})
    row = views.node_rows([gpu])[0]
    assert (row["cpu"].used, row["cpu"].total, row["cpu"].pct) == ("2500m", "8", 31.2)
    assert (row["memory"].used, row["memory"].total, row["memory"].pct) == ("16Gi", "64Gi", 25.0)
    assert (row["gpu"].used, row["gpu"].total, row["gpu"].pct) == ("1.5", "4", 37.5)
    assert (row["gpu_model"], row["gpu_memory"], row["gpus"]) == ("NVIDIA H100", "80Gi", 4)
    a = QueueStatus(name="a", weight=1, quota={"cpu": "2"}, usage={"cpu": 3000, "memory": 0}, pending=2, running=1)
    b = QueueStatus(name="b", weight=3)
    ra, rb = views.queue_rows([a, b])
    assert (ra["share"], rb["share"]) == (25.0, 75.0)
    assert ra["cpu"].pct == 150.0 and ra["cpu"].over and ra["memory"].total == "unlimited"
    assert (ra["pending"], ra["admitted"]) == (2, 1)


def test_memory_chart_data_of_an_oom_killed_attempt_and_its_measuring_retry():
    from jobsched.dashboard import views
    from jobsched.spec.api import AttemptInfo, AttemptResources, JobStatus, MemoryTimeline, SizingInfo

    mib = 2**20
    killed = AttemptInfo(index=0, reason="OOMKilled",
                         resources=AttemptResources(requests={"memory": 150 * mib}, limits={"memory": 150 * mib}),
                         memory_timeline=MemoryTimeline(rank=0, shape="growing", peak=150 * mib, duration=1.1,
                                                        growth_rate=0.0, limit_hit_at=1.0, t=[0.2, 0.6, 1.0],
                                                        usage=[40 * mib, 100 * mib, 150 * mib]))
    retry = AttemptInfo(index=1, reason="Completed",
                        resources=AttemptResources(requests={"memory": 225 * mib}, limits={"memory": 8192 * mib}))
    job = JobStatus(name="j", attempts=[killed, retry],
                    sizing=SizingInfo(estimated_memory=300 * mib, recommended_memory=420 * mib))
    a, b = (r["chart"] for r in views.attempt_rows(job))
    assert (a["t"], a["usage"], a["limit"], a["request"]) == ([0.2, 0.6, 1.0], [40.0, 100.0, 150.0], 150.0, None)
    assert (a["oom_at"], a["estimate"], a["recommended"]) == (1.0, 300.0, 420.0)
    assert (b["oom_at"], b["request"], b["limit"], b["t"]) == (None, 225.0, 8192.0, [])  # burst: both lines
