"""History recommender: raises under-sized families, shrinks over-sized ones, never below a floor."""

from __future__ import annotations

import pytest

from jobsched.rightsizing.history import PeakHistory, explain, recommend
from jobsched.rightsizing.policy import MIB, admission_memory

GiB = 2**30


def mib_up(n: float) -> int:
    return -(-int(n) // MIB) * MIB


@pytest.mark.parametrize(("declared", "peaks", "want"), [
    (4 * GiB, [6 * GiB] * 5, mib_up(6 * GiB * 1.15)),  # raise: the family needs more
    (32 * GiB, [GiB] * 5, mib_up(GiB * 1.15)),  # shrink: the family needs far less
    (32 * GiB, [GiB, 2 * GiB, 3 * GiB], mib_up(3 * GiB * 1.15)),  # a high percentile, not the mean
    (32 * GiB, [MIB] * 3, 64 * MIB),  # never below the floor
])
def test_recommendation_raises_and_shrinks(declared: int, peaks: list[int], want: int) -> None:
    rec = recommend(peaks)
    assert rec == want
    d = admission_memory(declared=declared, estimate=None, recommended=rec, margin=0.15, pinned_limit=None,
                         auto=True, cap=128 * GiB)
    assert d.memory == want
    assert (d.memory > declared) == (want > declared)


def test_only_the_last_window_counts() -> None:
    old_big, recent_small = [40 * GiB] * 10, [2 * GiB] * 5
    assert recommend(old_big + recent_small, window=5) == mib_up(2 * GiB * 1.15)
    assert recommend(old_big + recent_small, window=20) == mib_up(40 * GiB * 1.15)


def test_percentile_ignores_a_rare_outlier_with_enough_history() -> None:
    peaks = [GiB] * 39 + [10 * GiB]
    assert recommend(peaks, window=40, percentile=90) == mib_up(GiB * 1.15)
    assert recommend(peaks, window=40, percentile=100) == mib_up(10 * GiB * 1.15)


def test_no_history_no_recommendation() -> None:
    assert recommend([]) is None
    assert recommend([0, 0]) is None
    assert explain([], None) == "no history for this family"


def test_floor_is_tunable() -> None:
    assert recommend([MIB], floor=GiB) == GiB


@pytest.mark.parametrize(("kw", "field"), [({"percentile": 101}, "percentile"), ({"window": 0}, "window"),
                                           ({"margin": -1}, "margin")])
def test_bad_parameters_are_named(kw: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        recommend([GiB], **kw)  # type: ignore[arg-type]


def test_history_per_family_round_trips_and_is_bounded() -> None:
    h = PeakHistory(keep=3)
    for p in (GiB, 2 * GiB, 3 * GiB, 4 * GiB):
        h.record("bert", p)
    h.record("bert", None)
    h.record("gpt", 8 * GiB)
    assert h.of("bert") == [2 * GiB, 3 * GiB, 4 * GiB]
    again = PeakHistory.from_dict(h.to_dict(), keep=3)
    assert again.recommend("bert") == h.recommend("bert") == mib_up(4 * GiB * 1.15)
    assert again.recommend("resnet") is None
    assert "p95 of the last 3 peaks" in explain(h.of("bert"), h.recommend("bert"))
