"""The CronWorkflow loop: the controller calls :meth:`CronScheduler.tick` every pass with its
(injectable) clock; each scheduled time creates a Workflow ``<cron>-<unix time>``, as Argo names them.

* ``concurrencyPolicy``: ``Allow`` (default) starts it anyway; ``Forbid`` skips it while a workflow of
  this CronWorkflow is active; ``Replace`` cancels the active ones first.
* ``startingDeadlineSeconds``: a scheduled time missed by more than this (the server was down) is
  skipped; without it, a time missed by more than a minute is. Of several missed times, only the
  latest runs (Argo does the same).
* ``suspend: true`` schedules nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobsched.workflows import cron
from jobsched.workflows.model import CronWorkflow
from jobsched.workflows.wfvars import rfc3339

LABEL = "workflows.argoproj.io/cron-workflow"
GRACE_S = 60.0


class CronScheduler:
    def __init__(self, path: Path, submit: Callable[[dict[str, Any]], Any],
                 active: Callable[[str, str], bool], cancel: Callable[[str, str], Any]) -> None:
        self.path, self.submit, self.active, self.cancel = path, submit, active, cancel
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}  # "ns/name" -> {manifest, last, workflows, skipped}
        if path.exists():
            self.entries = json.loads(path.read_text())

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries))
        tmp.replace(self.path)

    def apply(self, manifest: dict[str, Any], now: float) -> dict[str, Any]:
        """Create or replace a CronWorkflow (already linted); it schedules from ``now`` on."""
        cw = CronWorkflow.model_validate(manifest)
        key = f"{cw.metadata.namespace}/{cw.metadata.name}"
        with self._lock:
            old = self.entries.get(key, {})
            self.entries[key] = {"manifest": manifest, "last": now,
                                 "workflows": old.get("workflows", []), "skipped": old.get("skipped", [])}
            self._save()
            return self.describe(key)

    def delete(self, namespace: str, name: str) -> bool:
        with self._lock:
            found = self.entries.pop(f"{namespace}/{name}", None) is not None
            self._save()
        return found

    def describe(self, key: str) -> dict[str, Any]:
        e = self.entries[key]
        ns, name = key.split("/", 1)
        return {"kind": "CronWorkflow", "namespace": ns, "name": name,
                "schedule": cron.schedules(CronWorkflow.model_validate(e["manifest"])),
                "lastScheduled": e["last"], "workflows": e["workflows"], "skipped": e["skipped"]}

    def describe_all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.describe(k) for k in sorted(self.entries)]

    def tick(self, now: float) -> list[str]:
        """Start what is due; returns the names of the workflows created."""
        created: list[str] = []
        with self._lock:
            changed = False
            for e in self.entries.values():
                cw = CronWorkflow.model_validate(e["manifest"])
                times = cron.due(cw, e["last"], now)
                if not times:
                    continue
                e["last"], changed = times[-1], True
                if cw.spec.suspend:
                    continue
                t = times[-1]
                deadline = cw.spec.starting_deadline_seconds
                if now - t > (deadline if deadline is not None else GRACE_S):
                    e["skipped"].append({"scheduledTime": rfc3339(t), "reason": "missed its starting deadline"})
                    continue
                ns = cw.metadata.namespace
                running = [w for w in e["workflows"] if self.active(ns, w)]
                if running and cw.spec.concurrency_policy == "Forbid":
                    e["skipped"].append({"scheduledTime": rfc3339(t),
                                         "reason": f"concurrencyPolicy Forbid: {running[0]} is running"})
                    continue
                if cw.spec.concurrency_policy == "Replace":
                    for w in running:
                        self.cancel(ns, w)
                name = f"{cw.metadata.name}-{int(t)}"
                meta = cw.spec.workflow_metadata
                doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                       "metadata": {"name": name, "namespace": ns,
                                    "labels": {**(meta.labels if meta else {}), LABEL: cw.metadata.name},
                                    "annotations": {**(meta.annotations if meta else {}),
                                                    "workflows.argoproj.io/scheduled-time": rfc3339(t)}},
                       "spec": e["manifest"]["spec"]["workflowSpec"]}
                try:
                    self.submit(doc)
                except Exception as ex:  # noqa: BLE001 - e.g. a WorkflowTemplate deleted since
                    e["skipped"].append({"scheduledTime": rfc3339(t), "reason": f"submit failed: {ex}"})
                    continue
                e["workflows"] = [*e["workflows"], name][-50:]
                created.append(name)
            if changed:
                self._save()
        return created
