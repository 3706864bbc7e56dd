"""OOM and admission policy: table tests over byte sizes."""

from __future__ import annotations

import pytest

from jobsched.rightsizing.policy import (
    MIB,
    admission_memory,
    gang_outcome,
    memory_cap,
    next_attempt_memory,
)

GiB = 2**30
CAP = 64 * GiB


def after(reason: str, previous: int, peak: int | None = None, cap: int = CAP, max_memory: int | None = None,
          **kw: object):
    return next_attempt_memory(reason=reason, previous=previous, observed_peak=peak, margin=0.15, growth=1.5,
                               cap=cap, max_memory=max_memory, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", ["OOMKilled", "InProgramOOM"])
@pytest.mark.parametrize(("previous", "peak"), [
    (0, None), (1, None), (GiB, None), (GiB, GiB), (GiB, GiB // 2), (GiB, 3 * GiB),
    (40 * GiB, 41 * GiB), (63 * GiB, None), (CAP - 1, CAP - 1), (CAP, CAP), (CAP + GiB, None),
])
def test_an_oom_is_never_retried_at_the_same_size(reason: str, previous: int, peak: int | None) -> None:
    d = after(reason, previous, peak)
    if d.memory is None:
        assert previous >= CAP and d.capped and "cap" in d.reason
    else:
        assert previous < d.memory <= CAP


@pytest.mark.parametrize(("previous", "peak", "want"), [
    (4 * GiB, None, 6 * GiB),  # previous x growth
    (4 * GiB, 4 * GiB, 6 * GiB),  # the limit it hit: growth wins over peak x (1 + margin)
    (4 * GiB, 10 * GiB, int(11.5 * GiB)),  # a real peak above the limit (in-program): peak + margin
    (0, None, 64 * MIB),  # no request at all: the minimum step
])
def test_oom_formula(previous: int, peak: int | None, want: int) -> None:
    d = after("OOMKilled", previous, peak)
    assert d.memory == want and not d.capped and "OOMKilled" in d.reason


def test_growth_stops_at_the_cap_with_a_reason_and_never_loops() -> None:
    size, sizes = GiB, []
    for _ in range(50):
        d = after("OOMKilled", size, size)
        if d.memory is None:
            break
        sizes.append(d.memory)
        size = d.memory
    else:
        pytest.fail("the OOM policy looped")
    assert sizes == sorted(set(sizes)) and sizes[-1] == CAP
    assert d.memory is None and d.capped
    assert "cap" in d.reason and "largest node" in d.reason


def test_last_step_is_clamped_to_the_cap_and_marked() -> None:
    d = after("OOMKilled", 50 * GiB, None)
    assert d.memory == CAP and d.capped and "last try" in d.reason


def test_max_memory_caps_below_the_largest_node() -> None:
    d = after("OOMKilled", 7 * GiB, None, max_memory=8 * GiB)
    assert d.memory == 8 * GiB and d.capped
    stop = after("OOMKilled", 8 * GiB, None, max_memory=8 * GiB)
    assert stop.memory is None and "maxMemory" in stop.reason


@pytest.mark.parametrize("reason", ["Evicted", "Preempted", "Error", "NodeLost", "Lost", "StartFailed"])
def test_not_an_oom_keeps_the_size(reason: str) -> None:
    d = after(reason, 5 * GiB, 4 * GiB)
    assert d.memory == 5 * GiB and not d.capped


def test_evicted_says_node_pressure_and_keeps_the_size_even_at_the_cap() -> None:
    d = after("Evicted", CAP, CAP)
    assert d.memory == CAP and "Evicted" in d.reason and "same size" in d.reason


def test_in_program_host_oom_resizes_with_its_own_reason() -> None:
    d = after("InProgramOOM", 4 * GiB, None)
    assert d.memory == 6 * GiB and "InProgramOOM" in d.reason and "OOMKilled" not in d.reason


def test_cuda_oom_asks_for_a_larger_gpu_and_keeps_host_memory() -> None:
    d = after("InProgramOOM", 4 * GiB, 24 * GiB, device="gpu", gpu_memory=24 * GiB, gpu_cap=80 * GiB)
    assert d.memory == 4 * GiB
    assert d.gpu_memory == 36 * GiB and "CUDA" in d.reason


def test_cuda_oom_on_the_largest_gpu_stops_with_a_batch_size_hint() -> None:
    d = after("InProgramOOM", 4 * GiB, 80 * GiB, device="gpu", gpu_memory=80 * GiB, gpu_cap=80 * GiB,
              batch_size=64)
    assert d.memory is None and d.batch_hint == 55  # 64 * 80 / (80 * 1.15)
    assert "batch size of at most 55" in d.reason
    given = after("InProgramOOM", 4 * GiB, None, device="gpu", gpu_memory=80 * GiB, gpu_cap=80 * GiB,
                  batch_hint=16)
    assert given.memory is None and given.batch_hint == 16


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="previous"):
        after("OOMKilled", -1)
    with pytest.raises(ValueError, match="growth"):
        next_attempt_memory(reason="OOMKilled", previous=GiB, observed_peak=None, margin=0.1, growth=1.0,
                            cap=CAP, max_memory=None)
    with pytest.raises(ValueError):
        after("Exploded", GiB)


def admit(declared: int, estimate: int | None = None, recommended: int | None = None, *, auto: bool = True,
          pinned: int | None = None, cap: int = CAP):
    return admission_memory(declared=declared, estimate=estimate, recommended=recommended, margin=0.15,
                            pinned_limit=pinned, auto=auto, cap=cap)


@pytest.mark.parametrize(("declared", "estimate", "recommended", "auto", "want", "why"), [
    (4 * GiB, 8 * GiB, None, True, int(9.2 * GiB) + MIB - int(9.2 * GiB) % MIB, "estimate"),
    (16 * GiB, 8 * GiB, None, True, 16 * GiB, "declared"),
    (16 * GiB, None, None, True, 16 * GiB, "no estimate"),
    (16 * GiB, 2 * GiB, 3 * GiB, True, 3 * GiB, "shrunk"),  # history shrinks an over-sized request
    (2 * GiB, None, 5 * GiB, True, 5 * GiB, "history"),  # ...and raises an under-sized one
    (2 * GiB, 8 * GiB, 5 * GiB, True, int(9.2 * GiB) + MIB - int(9.2 * GiB) % MIB, "estimate"),
    (4 * GiB, 8 * GiB, 5 * GiB, False, 4 * GiB, "Fixed"),
])
def test_admission(declared: int, estimate: int | None, recommended: int | None, auto: bool, want: int,
                   why: str) -> None:
    d = admit(declared, estimate, recommended, auto=auto)
    assert d.memory == want and why in d.reason


def test_fixed_below_the_estimate_is_admitted_with_a_warning() -> None:
    d = admit(4 * GiB, 8 * GiB, auto=False)
    assert d.memory == 4 * GiB and d.warning and "below the estimate" in d.warning
    assert admit(16 * GiB, 8 * GiB, auto=False).warning is None


def test_a_pinned_limit_is_kept_under_auto() -> None:
    d = admit(4 * GiB, 8 * GiB, 10 * GiB, pinned=4 * GiB)
    assert d.memory == 4 * GiB and "pinned" in d.reason and d.warning


def test_admission_that_cannot_fit_anywhere_says_so() -> None:
    d = admit(4 * GiB, 100 * GiB)
    assert d.memory is None and "largest node" in d.reason
    assert admit(100 * GiB, auto=False).memory is None


def test_admission_margin_is_cut_at_the_cap() -> None:
    d = admit(4 * GiB, 60 * GiB)  # 60 GiB fits, 69 GiB does not
    assert d.memory == CAP and d.capped and d.warning


def test_memory_cap() -> None:
    assert memory_cap([8 * GiB, 32 * GiB]) == 32 * GiB
    assert memory_cap([8 * GiB, 32 * GiB], 16 * GiB) == 16 * GiB
    with pytest.raises(ValueError):
        memory_cap([])


@pytest.mark.parametrize(("exits", "want"), [
    ([("OOMKilled", GiB), ("GangStopped", None), ("GangStopped", 2 * GiB)], ("OOMKilled", 2 * GiB)),
    ([("Evicted", None), ("InProgramOOM", 3 * GiB)], ("InProgramOOM", 3 * GiB)),
    ([("Evicted", None), ("GangStopped", None)], ("Evicted", None)),
    ([("Completed", GiB), ("Completed", 5)], ("Completed", GiB)),
    ([("GangStopped", None)], ("GangStopped", None)),
])
def test_gang_outcome(exits: list[tuple[str, int | None]], want: tuple[str, int | None]) -> None:
    assert gang_outcome(exits) == want


def test_memory_mode_jobsched_never_crash_loops_and_ooms_least(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from jobsched.sim.memory import format_table, run_memory_mode

    r = run_memory_mode(None, [0], jobs=120)
    st = r["strategies"]
    assert st["jobsched"]["crash_loops"] == 0 and st["static"]["crash_loops"] > 0
    assert st["jobsched"]["oom_kills"] < min(st[s]["oom_kills"] for s in ("static", "vpa", "argo"))
    assert st["jobsched"]["failed_jobs"] <= st["static"]["failed_jobs"]
    assert "jobsched" in format_table(r)
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,scheduled_time,deletion_time\n"
                    "a,4000,8192,8,1000,0,0,7200\nb,2000,4096,0,0,0,0,3600\n")
    traced = run_memory_mode(str(pods), [0], jobs=40)
    assert traced["workload"]["gpu_counts"] == "trace pods"
    for m in traced["strategies"].values():  # GPU-hours come only from the 8-GPU pod: 8 x replica-hours
        assert m["wasted_gpu_hours"] <= 8 * m["wasted_replica_hours"] + 1e-9
    with pytest.raises(ValueError, match="unknown memory-mode option"):
        run_memory_mode(None, [0], colour="red")


def test_largest_host_memory_counts_only_nodes_that_could_host_a_replica() -> None:
    from jobsched.core.nodes import NodeTable
    from jobsched.core.snapshot import NodeShape
    from jobsched.rightsizing.policy import largest_host_memory
    from jobsched.spec.resources import Resources
    from tests.builders import make_job

    table = NodeTable.from_arrays(["cpu-huge", "gpu-small", "gpu-big"], [64000, 16000, 16000],
                                  [512 * GiB, 64 * GiB, 128 * GiB], [0, 4, 4], ["", "A10G", "A100"])
    gpu_job = make_job("g").cpu(8000).gpus(2).build()
    assert largest_host_memory(table, gpu_job) == 128 * GiB  # the 512 GiB node has no GPU
    assert largest_host_memory(table, make_job("a").gpus(1).models("A10G").build()) == 64 * GiB
    assert largest_host_memory(table, make_job("c").cpu(32000).build()) == 512 * GiB
    shape = NodeShape("p4d", Resources(96000, 1152 * GiB, 8, 1000), 2, "A100")
    assert largest_host_memory(table, gpu_job, [shape]) == 1152 * GiB
    assert largest_host_memory(table, make_job("x").gpus(16).build(), [shape]) is None


def test_memory_mode_reads_the_measured_zoo(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from jobsched.sim.memory import load_zoo, run_memory_mode

    zoo = tmp_path / "zoo.json"
    zoo.write_text(json.dumps({"summary": {"median_error": 0.05}, "configs": [
        {"name": "mlp", "kwargs": {"batch": 8}, "estimate_bytes": 900 * MIB,
         "breakdown": {"parameters": 10, "activations_peak": 20}, "measured_peak_bytes": 1000 * MIB,
         "measured_runs": [1000 * MIB]},
        {"name": "cnn", "estimate_bytes": 3 * GiB, "measured_peak_bytes": 2 * GiB}]}))
    fams, source = load_zoo(zoo)
    assert [(f.name, f.peak, f.estimate) for f in fams] == [("mlp", 1000 * MIB, 900 * MIB),
                                                            ("cnn", 2 * GiB, 3 * GiB)]
    assert "measured zoo" in source and "SYNTHETIC" in load_zoo(tmp_path / "missing.json")[1]
    r = run_memory_mode(None, [0], jobs=60, zoo=str(zoo))
    assert r["workload"]["peaks"].startswith("measured zoo")
    assert r["strategies"]["jobsched"]["crash_loops"] == 0


def test_admission_honours_max_memory() -> None:
    d = admission_memory(declared=4 * GiB, estimate=6 * GiB, recommended=None, margin=0.15, pinned_limit=None,
                         auto=True, cap=CAP, max_memory=int(6.5 * GiB))
    assert d.memory == int(6.5 * GiB) and d.capped
    stop = admission_memory(declared=4 * GiB, estimate=7 * GiB, recommended=None, margin=0.15,
                            pinned_limit=None, auto=True, cap=CAP, max_memory=6 * GiB)
    assert stop.memory is None and "maxMemory" in stop.reason


def test_memory_mode_is_deterministic_per_seed() -> None:
    from jobsched.sim.memory import run_memory_mode

    a, b = run_memory_mode(None, [3], jobs=50), run_memory_mode(None, [3], jobs=50)
    assert a["strategies"] == b["strategies"]
    assert a["strategies"] != run_memory_mode(None, [4], jobs=50)["strategies"]
