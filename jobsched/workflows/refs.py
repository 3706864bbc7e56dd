"""WorkflowTemplates, ``templateRef``, ``spec.workflowTemplateRef`` and ``inline`` templates,
resolved into one self-contained Workflow manifest before it is validated and run.

A template ``T`` of WorkflowTemplate ``W`` is copied into the workflow as ``W/T``
(``cluster:W/T`` for a ClusterWorkflowTemplate), and the references inside it are renamed the same
way, so the engine only ever sees plain ``template:`` names. An ``inline`` template becomes
``<template>.<task>.inline``. Works on camelCase dicts, so the result is an ordinary manifest
(stored as it is, shown by ``status``).
"""

from __future__ import annotations

import copy
from typing import Any

Library = dict[tuple[bool, str], dict[str, Any]]  # (cluster scope, name) -> WorkflowTemplate doc
TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate")


class RefError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def library_of(docs: list[dict[str, Any]]) -> Library:
    return {(d.get("kind") == "ClusterWorkflowTemplate", str((d.get("metadata") or {}).get("name"))): d
            for d in docs if d.get("kind") in TEMPLATE_KINDS}


def _prefix(cluster: bool, name: str) -> str:
    return f"{'cluster:' if cluster else ''}{name}/"


def _invocations(tmpl: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for g, group in enumerate(tmpl.get("steps") or []):
        for s, step in enumerate(group or []):
            if isinstance(step, dict):
                out.append((f"{path}.steps[{g}][{s}]", step))
    for k, task in enumerate((tmpl.get("dag") or {}).get("tasks") or []):
        if isinstance(task, dict):
            out.append((f"{path}.dag.tasks[{k}]", task))
    return out


class _Resolver:
    def __init__(self, library: Library) -> None:
        self.library = library
        self.errors: list[str] = []
        self.added: dict[str, dict[str, Any]] = {}

    def wt(self, path: str, cluster: bool, name: str) -> dict[str, Any] | None:
        doc = self.library.get((cluster, name))
        if doc is None:
            kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
            self.errors.append(f"{path}: {kind} {name!r} not found (put it in the same file, "
                               "or submit it first with `jobsched workflow submit`)")
        return doc

    def import_template(self, path: str, cluster: bool, wt_name: str, tmpl_name: str) -> str | None:
        full = _prefix(cluster, wt_name) + tmpl_name
        if full in self.added:
            return full
        doc = self.wt(f"{path}.name", cluster, wt_name)
        if doc is None:
            return None
        found = [t for t in (doc.get("spec") or {}).get("templates") or [] if t.get("name") == tmpl_name]
        if not found:
            self.errors.append(f"{path}.template: template {tmpl_name!r} is not defined in "
                               f"{'ClusterWorkflowTemplate' if cluster else 'WorkflowTemplate'} {wt_name!r}")
            return None
        t = copy.deepcopy(found[0])
        t["name"] = full
        self.added[full] = t
        self.rewrite(t, f"{path}<{full}>", _prefix(cluster, wt_name), cluster, wt_name)
        return full

    def rewrite(self, tmpl: dict[str, Any], path: str, prefix: str, cluster: bool | None,
                wt_name: str | None) -> None:
        """Resolve the references of one template (``prefix``: how its own names are spelt now)."""
        for ipath, inv in _invocations(tmpl, path):
            self.invocation(ipath, inv, prefix, cluster, wt_name, tmpl["name"])
            for hname, hook in (inv.get("hooks") or {}).items():
                if isinstance(hook, dict):
                    self.invocation(f"{ipath}.hooks.{hname}", hook, prefix, cluster, wt_name, tmpl["name"])
            if prefix and isinstance(inv.get("onExit"), str):
                inv["onExit"] = self.local(prefix, cluster, wt_name, inv["onExit"], f"{ipath}.onExit")

    def local(self, prefix: str, cluster: bool | None, wt_name: str | None, name: str, path: str) -> str:
        if not prefix or wt_name is None or cluster is None:
            return name
        return self.import_template(path, cluster, wt_name, name) or name

    def invocation(self, ipath: str, inv: dict[str, Any], prefix: str, cluster: bool | None,
                   wt_name: str | None, owner: str) -> None:
        ref = inv.get("templateRef")
        if isinstance(ref, dict) and ref.get("name") and ref.get("template"):
            full = self.import_template(f"{ipath}.templateRef", bool(ref.get("clusterScope")),
                                        str(ref["name"]), str(ref["template"]))
            if full is not None:
                inv.pop("templateRef")
                inv["template"] = full
        elif isinstance(inv.get("inline"), dict):
            t = inv.pop("inline")
            t["name"] = f"{owner}.{inv.get('name')}.inline"
            self.added[t["name"]] = t
            self.rewrite(t, f"{ipath}.inline", prefix, cluster, wt_name)
            inv["template"] = t["name"]
        elif prefix and isinstance(inv.get("template"), str) and "{{" not in inv["template"]:
            inv["template"] = self.local(prefix, cluster, wt_name, inv["template"], f"{ipath}.template")


def _merge_params(base: list[Any], over: list[Any]) -> list[Any]:
    names = {p.get("name") for p in over if isinstance(p, dict)}
    return [p for p in base if not (isinstance(p, dict) and p.get("name") in names)] + list(over)


def resolve(manifest: dict[str, Any], library: Library) -> dict[str, Any]:
    """The manifest with every reference resolved; raise :class:`RefError` naming the field."""
    if not isinstance(manifest.get("spec"), dict):
        return manifest
    doc = copy.deepcopy(manifest)
    spec = doc["spec"]
    r = _Resolver(library)
    wtref = spec.get("workflowTemplateRef")
    if isinstance(wtref, dict) and wtref.get("name"):
        base = r.wt("spec.workflowTemplateRef.name", bool(wtref.get("clusterScope")), str(wtref["name"]))
        if base is None:
            raise RefError(r.errors)
        merged = copy.deepcopy(base.get("spec") or {})
        own = {k: v for k, v in spec.items() if k != "workflowTemplateRef"}
        args = merged.get("arguments") or {}
        if "arguments" in own:
            args = {**args, **own.pop("arguments"),
                    "parameters": _merge_params((args.get("parameters") or []),
                                                (spec["arguments"].get("parameters") or []))}
        merged.update(own)
        merged["arguments"] = args
        merged["templates"] = list(merged.get("templates") or []) + list(own.get("templates") or [])
        doc["spec"] = spec = merged
    templates = spec.get("templates") or []
    for i, t in enumerate(templates):
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            r.rewrite(t, f"spec.templates[{i}]", "", None, None)
    for hname, hook in (spec.get("hooks") or {}).items():
        if isinstance(hook, dict):
            r.invocation(f"spec.hooks.{hname}", hook, "", None, None, "hooks")
    if r.errors:
        raise RefError(r.errors)
    if r.added:
        spec["templates"] = list(templates) + list(r.added.values())
    return doc
