"""Multi-document files: several Workflows, or WorkflowTemplates / ClusterWorkflowTemplates /
CronWorkflows plus Workflows, linted together (a ``templateRef`` finds a template defined in the same
file, or one submitted before)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.workflows import cron, loops, refs
from jobsched.workflows.lint import LintError, load
from jobsched.workflows.model import CronWorkflow, Workflow, WorkflowTemplate

KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


@dataclass
class Linted:
    kind: str
    name: str
    manifest: dict[str, Any]  # as submitted (a Workflow's references are resolved at submit)
    warnings: list[str] = field(default_factory=list)
    workflow: Workflow | None = None


def parse_all(text: str | bytes, source: str = "<manifest>") -> list[dict[str, Any]]:
    try:
        docs = [d for d, _ in yamlsafe.loads_all(text, source) if d is not None]
    except SpecError as e:
        raise LintError([str(e)]) from None
    if not docs:
        raise LintError([f"{source}: no YAML document"])
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise LintError([f"{source}: document {i + 1}: expected a mapping (an Argo manifest)"])
    return docs


def _name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "")


def _as_workflow(doc: dict[str, Any], spec: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": _name(doc) or "template"}, "spec": spec}


def lint_one(doc: dict[str, Any], library: refs.Library, parameters: dict[str, str] | None = None,
             max_loop_items: int = loops.MAX_LOOP_ITEMS) -> Linted:
    kind = doc.get("kind")
    if doc.get("apiVersion") != "argoproj.io/v1alpha1" or kind not in KINDS:
        raise LintError([f"apiVersion/kind: expected argoproj.io/v1alpha1 and one of {', '.join(KINDS)}, "
                         f"got {doc.get('apiVersion')!r} {kind!r}"])
    if kind == "Workflow":
        wf, warnings = load(doc, parameters, max_loop_items, library)
        return Linted("Workflow", _name(doc), doc, warnings, wf)
    try:
        model = (CronWorkflow if kind == "CronWorkflow" else WorkflowTemplate).model_validate(doc)
    except ValidationError as e:
        raise LintError(format_validation_error(e).splitlines()) from None
    if not model.metadata.name:
        raise LintError(["metadata.name: required"])
    if isinstance(model, CronWorkflow):
        errors = cron.check(model)
        if errors:
            raise LintError(errors)
        spec = doc["spec"]["workflowSpec"]
        try:
            _, warnings = load(_as_workflow(doc, spec), parameters, max_loop_items, library)
        except LintError as e:
            raise LintError([f"spec.workflowSpec.{x.removeprefix('spec.')}" for x in e.errors]) from None
        return Linted(str(kind), model.metadata.name, doc, warnings)
    _, warnings = load(_as_workflow(doc, doc.get("spec") or {}), None, max_loop_items, library,
                       library_doc=True)
    return Linted(str(kind), model.metadata.name, doc, warnings)


def lint_all(docs: list[dict[str, Any]], parameters: dict[str, str] | None = None,
             library: refs.Library | None = None,
             max_loop_items: int = loops.MAX_LOOP_ITEMS) -> list[Linted]:
    """Lint every document; errors are prefixed with the document's number and kind when there are
    several. ``parameters`` go to every Workflow (and CronWorkflow)."""
    lib = {**(library or {}), **refs.library_of(docs)}
    out: list[Linted] = []
    errors: list[str] = []
    for i, doc in enumerate(docs):
        try:
            out.append(lint_one(doc, lib, parameters, max_loop_items))
        except LintError as e:
            prefix = f"document {i + 1} ({doc.get('kind')} {_name(doc)!r}): " if len(docs) > 1 else ""
            errors.extend(prefix + x for x in e.errors)
    if errors:
        raise LintError(errors)
    return out
