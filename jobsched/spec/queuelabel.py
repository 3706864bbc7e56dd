"""Kueue's queue label: ``kueue.x-k8s.io/queue-name`` names the queue when ``spec.queue`` is unset.

Kueue users label their Jobs with the LocalQueue they submit to; jobsched reads the label as the
name of a jobsched Queue, so that manifests written for Kueue land in the queue they name instead of
``default``. An explicit, non-empty ``spec.queue`` always wins. One rule for every path: TrainingJob
custom resources, ``jobsched submit``, the API and SDK, and converted Jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def queue_from_labels(labels: Mapping[str, Any] | None, spec_queue: str | None) -> str | None:
    """The queue a job goes to: ``spec_queue`` when set and non-empty, else the Kueue label's value,
    else None (the caller's default, ``default``)."""
    if spec_queue:
        return spec_queue
    value = labels.get(KUEUE_QUEUE_LABEL) if isinstance(labels, Mapping) else None
    return value if isinstance(value, str) and value else None


def apply_queue_label(manifest: Any) -> Any:
    """A copy of a raw TrainingJob manifest whose ``spec.queue`` is filled from the Kueue label when
    unset or empty (unchanged when there is nothing to fill; never the caller's dict mutated)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        return manifest
    spec = manifest["spec"]
    md = manifest.get("metadata")
    labels = md.get("labels") if isinstance(md, dict) else None
    current = spec.get("queue")
    if current is not None and not isinstance(current, str):
        return manifest  # not a string: validation names spec.queue
    chosen = queue_from_labels(labels, current)
    if chosen == current or (chosen is None and current is None):
        return manifest
    new_spec = {k: v for k, v in spec.items() if k != "queue"}
    if chosen is not None:
        new_spec["queue"] = chosen
    return {**manifest, "spec": new_spec}
