"""Placement policies: Score plug-ins of the core, selectable by name.

``jobsched`` is the default. The baselines (random, bestfit, dotprod, packing, clustering, fgd)
are reimplemented from their published definitions for the simulator's comparisons.
"""

from __future__ import annotations

from collections.abc import Callable

from jobsched.core.framework import GpuChooser, ScorePlugin
from jobsched.core.policies.basic import BestFit, JobschedDefault, RandomFit

PolicyFactory = Callable[[int], tuple[ScorePlugin, GpuChooser]]

_REGISTRY: dict[str, PolicyFactory] = {}


def register(name: str, factory: PolicyFactory) -> None:
    _REGISTRY[name] = factory


def make_policy(name: str, seed: int = 0) -> tuple[ScorePlugin, GpuChooser]:
    _load_optional()
    try:
        return _REGISTRY[name](seed)
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def names() -> list[str]:
    _load_optional()
    return sorted(_REGISTRY)


def _load_optional() -> None:
    # Baselines live in their own module (it registers itself); import it on first use.
    import jobsched.core.policies.baselines  # noqa: F401


register("jobsched", lambda seed: JobschedDefault.make(seed))
register("bestfit", lambda seed: BestFit.make(seed))
register("random", lambda seed: RandomFit.make(seed))
