"""History recommender ("VPA for batch jobs"): size the next job of a family from its past peaks.

A family is a label (``TrainingJob.family()``; default the job name). The recommendation is a
high percentile of the last ``window`` peaks plus ``margin``, never below ``floor``. It raises
requests that were too small and shrinks over-provisioned ones. Pure: the controller persists
:class:`PeakHistory` through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from jobsched.rightsizing.policy import round_up
from jobsched.spec.quantity import format_bytes

DEFAULT_FLOOR = 64 * 2**20
DEFAULT_WINDOW = 20
DEFAULT_PERCENTILE = 95.0


def recommend(
    peaks: Sequence[int],
    *,
    margin: float = 0.15,
    percentile: float = DEFAULT_PERCENTILE,
    floor: int = DEFAULT_FLOOR,
    window: int = DEFAULT_WINDOW,
) -> int | None:
    """``max(floor, percentile(last window peaks) * (1 + margin))`` rounded up to MiB; None
    without history. ``peaks`` are ordered oldest first."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0..100, got {percentile}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if margin < 0 or floor < 0:
        raise ValueError("margin and floor must not be negative")
    recent = [p for p in peaks[-window:] if p > 0]
    if not recent:
        return None
    value = float(np.percentile(np.asarray(recent, dtype=np.float64), percentile, method="higher"))
    return max(round_up(value * (1 + margin)), floor)


def explain(peaks: Sequence[int], recommended: int | None, *, percentile: float = DEFAULT_PERCENTILE,
            window: int = DEFAULT_WINDOW) -> str:
    """A line for status and events: what the recommendation is based on."""
    recent = [p for p in peaks[-window:] if p > 0]
    if recommended is None or not recent:
        return "no history for this family"
    return (f"p{percentile:g} of the last {len(recent)} peaks "
            f"({format_bytes(min(recent))}..{format_bytes(max(recent))}) + margin = "
            f"{format_bytes(recommended)}")


@dataclass
class PeakHistory:
    """Per-family peaks of finished attempts (newest last), bounded to ``keep`` per family.

    Record the peaks of attempts that completed; an OOM'd attempt's peak is the limit it hit,
    not what it needed, so it belongs to the OOM policy, not here."""

    keep: int = 100
    peaks: dict[str, list[int]] = field(default_factory=dict)

    def record(self, family: str, peak: int | None) -> None:
        if peak is None or peak <= 0:
            return
        lst = self.peaks.setdefault(family, [])
        lst.append(int(peak))
        del lst[:-self.keep]

    def of(self, family: str) -> list[int]:
        return list(self.peaks.get(family, ()))

    def recommend(self, family: str, *, margin: float = 0.15, percentile: float = DEFAULT_PERCENTILE,
                  floor: int = DEFAULT_FLOOR, window: int = DEFAULT_WINDOW) -> int | None:
        return recommend(self.peaks.get(family, ()), margin=margin, percentile=percentile, floor=floor,
                         window=window)

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self.peaks.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[int]], keep: int = 100) -> PeakHistory:
        h = cls(keep)
        for fam, vals in data.items():
            for v in vals:
                h.record(str(fam), int(v))
        return h
