"""``jobsched workflow lint``: parse and check an Argo Workflow like ``argo lint`` does.

:func:`load` returns the parsed :class:`Workflow` and warnings, or raises :class:`LintError` whose
lines each name a field path (``spec.templates[2].dag.tasks[1].dependencies: cycle a -> b -> a``).
"""

from __future__ import annotations

import graphlib
import json
import re
from typing import Any

from pydantic import ValidationError

from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.workflows import expr, loops, refs, resource
from jobsched.workflows.model import UNSUPPORTED_KINDS, DagTask, Template, Workflow, ignored_fields
from jobsched.workflows.util import ANN_MEMORY_POLICY, ANN_PLACEMENT, ANN_REPLICAS, parse_duration


class LintError(SpecError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def parse_yaml(text: str | bytes, source: str = "<manifest>") -> dict[str, Any]:
    """Safely, within bounds (:mod:`jobsched.spec.yamlsafe`)."""
    try:
        doc, _ = yamlsafe.loads(text, source)
    except SpecError as e:
        raise LintError([str(e)]) from None
    if not isinstance(doc, dict):
        raise LintError([f"{source}: expected a mapping (an Argo Workflow manifest)"])
    return doc


def load(manifest: dict[str, Any], parameters: dict[str, str] | None = None,
         max_loop_items: int = loops.MAX_LOOP_ITEMS, library: refs.Library | None = None,
         library_doc: bool = False) -> tuple[Workflow, list[str]]:
    """Validate; return the workflow and warnings (ignored Argo fields). A loop known at submit to
    have more than ``max_loop_items`` items is an error naming its field. ``templateRef`` and
    ``workflowTemplateRef`` are resolved against ``library`` first (:mod:`refs`).
    ``library_doc``: a WorkflowTemplate's spec (no entrypoint or argument values required)."""
    if manifest.get("apiVersion") != "argoproj.io/v1alpha1" or manifest.get("kind") != "Workflow":
        raise LintError([f"apiVersion/kind: expected argoproj.io/v1alpha1 Workflow, got "
                         f"{manifest.get('apiVersion')!r} {manifest.get('kind')!r}"])
    try:
        manifest = refs.resolve(manifest, library or {})
    except refs.RefError as e:
        raise LintError(e.errors) from None
    try:
        wf = Workflow.model_validate(manifest)
    except ValidationError as e:
        raise LintError(format_validation_error(e).splitlines()) from None
    errors = _check(wf, parameters or {}, max_loop_items, library_doc)
    if errors:
        raise LintError(errors)
    warnings = [f"{p}: accepted but not acted on by jobsched (ignored)" for p in ignored_fields(wf)]
    for p in entrypoint_only(wf):
        warnings.append(f"{p}: not set, so the step runs the image's entrypoint: on Kubernetes only "
                        f"({ENTRYPOINT_HINT})")
    for i, t in enumerate(wf.spec.templates):
        if t.resource is not None:
            for flag in resource.parse_flags(t.resource.flags).unknown:
                warnings.append(f"spec.templates[{i}].resource.flags: {flag!r} not acted on by jobsched (ignored; "
                                "TYPE NAME, --selector/-l, --namespace/-n and --ignore-not-found are)")
        if t.leaf is None and t.retry_strategy is not None:
            warnings.append(f"spec.templates[{i}].retryStrategy: not acted on for a {t.kind} template "
                            "(jobsched retries container and script steps)")
    return wf, warnings


def _check_resource(path: str, r: Any, errs: list[str]) -> None:
    if "{{" not in r.action and r.action not in resource.ACTIONS:
        errs.append(f"{path}.action: {r.action!r} is not one of {', '.join(resource.ACTIONS)}")
    if r.merge_strategy is not None and r.merge_strategy not in resource.MERGE_STRATEGIES:
        errs.append(f"{path}.mergeStrategy: {r.merge_strategy!r} is not one of "
                    f"{', '.join(resource.MERGE_STRATEGIES)}")
    target = resource.parse_flags(r.flags)
    if target.type is not None:  # kubectl's `TYPE [NAME]` in flags names the object
        if target.name is None and target.selector is None:
            errs.append(f"{path}.flags: {target.type!r} needs a name or --selector")
        if r.manifest is None and r.action in ("patch", "create", "apply", "replace"):
            errs.append(f"{path}.manifest: required for {r.action}")
    elif r.manifest is None:
        if r.manifest_from is None:
            errs.append(f"{path}.manifest: required (or name the object in flags: [TYPE, NAME])")
    elif "{{" not in r.manifest:
        try:
            resource.load_manifest(r.manifest)
        except ValueError as e:
            errs.append(f"{path}.manifest: {e}")
    for field, cond in (("successCondition", r.success_condition), ("failureCondition", r.failure_condition)):
        if cond and "{{" not in cond:
            try:
                resource.parse_condition(cond)
            except resource.ConditionError as e:
                errs.append(f"{path}.{field}: {e}")


def _check_container_set(path: str, cs: Any, errs: list[str]) -> None:
    names = [c.name for c in cs.containers]
    for i, c in enumerate(cs.containers):
        if names.index(c.name) != i:
            errs.append(f"{path}.containers[{i}].name: {c.name!r} is used twice")
        for d in c.dependencies:
            if d not in names:
                errs.append(f"{path}.containers[{i}].dependencies: no container named {d!r}")
    try:
        graphlib.TopologicalSorter({c.name: set(c.dependencies) & set(names) for c in cs.containers}).prepare()
    except graphlib.CycleError as e:
        errs.append(f"{path}.containers: dependency cycle {' -> '.join(e.args[1])}")


def container_set_steps(wf: Workflow) -> list[str]:
    """The templates that run a ``containerSet``."""
    return [f"spec.templates[{i}].containerSet" for i, t in enumerate(wf.spec.templates) if t.container_set is not None]


CONTAINER_SET_HINT = ("a containerSet runs its containers as processes of one replica, which only a backend "
                      "that runs commands on its hosts can do (local, Ray); on Kubernetes write the "
                      "containers as steps of a dag")


def data_steps(wf: Workflow) -> list[str]:
    return [f"spec.templates[{i}].data" for i, t in enumerate(wf.spec.templates) if t.data is not None]


DATA_HINT = ("a data template lists and transforms the files of an artifact repository, and jobsched has no "
             "artifact repositories (artifacts are ignored): list the files in a script step and pass them on "
             "as its result")


def resource_steps(wf: Workflow) -> list[str]:
    """The templates that act on Kubernetes objects (``resource``)."""
    return [f"spec.templates[{i}].resource" for i, t in enumerate(wf.spec.templates) if t.resource is not None]


RESOURCE_HINT = ("a resource step acts on Kubernetes objects, which only a server with the Kubernetes "
                 "backend can do: run it there (`jobsched server --backend kubernetes`)")
ENTRYPOINT_HINT = ("the local backend runs commands on the host and cannot run an image's "
                   "entrypoint: set `command`, or run it on Kubernetes")


def entrypoint_only(wf: Workflow) -> list[str]:
    """The leaf templates (and containerSet containers) that rely on the image's entrypoint (no
    ``command``)."""
    out = []
    for i, t in enumerate(wf.spec.templates):
        if t.container_set is not None:
            out += [f"spec.templates[{i}].containerSet.containers[{j}].command"
                    for j, c in enumerate(t.container_set.containers) if not c.command]
        elif t.leaf is not None and not t.leaf.command and not (t.script and t.script.source):
            out.append(f"spec.templates[{i}].{'script' if t.script else 'container'}.command")
    return out


def _check(wf: Workflow, parameters: dict[str, str], max_loop_items: int = loops.MAX_LOOP_ITEMS,
           library_doc: bool = False) -> list[str]:
    errs: list[str] = []
    spec = wf.spec
    if not wf.metadata.name and not wf.metadata.generate_name:
        errs.append("metadata.name: required (or metadata.generateName)")
    if not spec.entrypoint and not library_doc:
        errs.append("spec.entrypoint: required")
    names: dict[str, int] = {}
    for i, t in enumerate(spec.templates):
        if t.name in names:
            errs.append(f"spec.templates[{i}].name: duplicate template name {t.name!r} "
                        f"(also spec.templates[{names[t.name]}])")
        names.setdefault(t.name, i)

    def ref(path: str, name: str | None) -> None:
        if name is not None and name not in names and "{{" not in name:
            errs.append(f"{path}: template {name!r} is not defined")

    ref("spec.entrypoint", spec.entrypoint)
    ref("spec.onExit", spec.on_exit)
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds < 0:
        errs.append("spec.activeDeadlineSeconds: must not be negative")
    declared = {p.name for p in spec.arguments.parameters}
    for j, p in enumerate(spec.arguments.parameters):
        value = parameters.get(p.name, p.value)
        if value is None and p.value_from is None and not library_doc:
            errs.append(f"spec.arguments.parameters[{j}].value: required for {p.name!r} "
                        "(or pass -p {p.name}=...)".replace("{p.name}", p.name))
        elif p.enum is not None and value is not None and value not in p.enum:
            errs.append(f"spec.arguments.parameters[{j}].value: {value!r} is not one of {p.enum}")
    for name in parameters:
        if name not in declared:
            errs.append(f"arguments: parameter {name!r} is not declared in spec.arguments.parameters")
    values = {p.name: parameters.get(p.name, p.value) for p in spec.arguments.parameters}
    known = {k: v for k, v in values.items() if v is not None}
    for i, t in enumerate(spec.templates):
        errs.extend(_check_template(f"spec.templates[{i}]", t, ref, known, max_loop_items))
        errs.extend(_check_refs(f"spec.templates[{i}]", t, declared, library_doc))
    _patch_ok("spec.podSpecPatch", spec.pod_spec_patch, errs)
    for hname, hook in (spec.hooks or {}).items():
        ref(f"spec.hooks.{hname}.template", hook.template)
        _expr_ok(f"spec.hooks.{hname}.expression", hook.expression, errs)
    return errs


def _expr_ok(path: str, text: str | None, errs: list[str]) -> None:
    """Parse an expression the engine evaluates after substitution (``{{..}}`` stands for a value)."""
    if text:
        try:
            expr.check(re.sub(r"{{[^}]*}}", "x", text))
        except expr.ExprError as e:
            errs.append(f"{path}: {e}")


_INLINE_EXPR = re.compile(r"{{\s*=(.*?)}}", re.S)


def _inline_exprs(path: str, t: Template, errs: list[str]) -> None:
    """Every ``{{=expression}}`` in the template parses (the engine's parser, nothing resolved)."""
    doc = t.model_dump(mode="json", by_alias=True, exclude_none=True)
    for where, text in _strings(doc, path):
        for m in _INLINE_EXPR.finditer(text):
            try:
                expr.check(m.group(1))
            except expr.ExprError as e:
                errs.append(f"{where}: {{{{={m.group(1).strip()}}}}}: {e}")


def _patch_ok(path: str, patch: str | None, errs: list[str]) -> None:
    if patch and "{{" not in patch:
        try:
            doc, _ = yamlsafe.loads(patch, path)
        except SpecError as e:
            errs.append(f"{path}: not JSON or YAML: {str(e).removeprefix(path + ': ')}")
            return
        if not isinstance(doc, dict):
            errs.append(f"{path}: must be a mapping (a partial pod spec)")


def _check_template(path: str, t: Template, ref: Any, parameters: dict[str, str] | None = None,
                    max_loop_items: int = loops.MAX_LOOP_ITEMS) -> list[str]:
    errs: list[str] = []
    kinds = t.kinds()
    if len(kinds) > 1:
        errs.append(f"{path}: several template kinds ({', '.join(kinds)}); use exactly one")
    elif not kinds:
        errs.append(f"{path}: no template kind (one of container, script, dag, steps, suspend, http)")
    elif kinds[0] in UNSUPPORTED_KINDS:
        errs.append(f"{path}.{kinds[0]}: template kind {kinds[0]!r} is not supported by jobsched")
    if t.resource is not None:
        _check_resource(f"{path}.resource", t.resource, errs)
    if t.container_set is not None:
        _check_container_set(f"{path}.containerSet", t.container_set, errs)
    if t.data is not None:
        if "artifactPaths" not in t.data.source:
            errs.append(f"{path}.data.source: artifactPaths is required (the only source Argo has)")
        for j, tr in enumerate(t.data.transformation):
            if not isinstance(tr.get("expression"), str):
                errs.append(f"{path}.data.transformation[{j}].expression: required")
            else:
                _expr_ok(f"{path}.data.transformation[{j}].expression", tr["expression"], errs)
    if t.http is not None:
        h = t.http
        if "{{" not in h.method and h.method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                                             "OPTIONS"):
            errs.append(f"{path}.http.method: {h.method!r} is not an HTTP method")
        if "{{" not in h.url and not re.match(r"https?://", h.url):
            errs.append(f"{path}.http.url: {h.url!r} must start with http:// or https://")
        if h.timeout_seconds is not None and h.timeout_seconds < 0:
            errs.append(f"{path}.http.timeoutSeconds: must not be negative")
        _expr_ok(f"{path}.http.successCondition", h.success_condition, errs)
    durations = [("activeDeadlineSeconds", t.active_deadline_seconds), ("timeout", t.timeout)]
    if t.suspend is not None:
        durations.append(("suspend.duration", t.suspend.duration))
    for field, value in durations:
        if value is not None and "{{" not in value:
            try:
                parse_duration(value)
            except ValueError as e:
                errs.append(f"{path}.{field}: {e}")
    if t.parallelism is not None and t.parallelism < 0:
        errs.append(f"{path}.parallelism: must not be negative")
    leaf = t.leaf
    _inline_exprs(path, t, errs)
    rs = t.retry_strategy
    if rs is not None:
        if rs.limit is not None and "{{" not in rs.limit and not re.fullmatch(r"\d+", rs.limit.strip()):
            errs.append(f"{path}.retryStrategy.limit: must be a non-negative integer, got {rs.limit!r}")
        if rs.backoff is not None:
            for field in ("duration", "maxDuration", "cap"):
                value = getattr(rs.backoff, {"maxDuration": "max_duration"}.get(field, field))
                if value is not None and "{{" not in value:
                    try:
                        parse_duration(value)
                    except ValueError as e:
                        errs.append(f"{path}.retryStrategy.backoff.{field}: {e}")
        _expr_ok(f"{path}.retryStrategy.expression", rs.expression, errs)
    _patch_ok(f"{path}.podSpecPatch", t.pod_spec_patch, errs)
    ann = t.metadata.annotations
    if ANN_REPLICAS in ann and not (ann[ANN_REPLICAS].isdigit() and int(ann[ANN_REPLICAS]) >= 1):
        errs.append(f"{path}.metadata.annotations.{ANN_REPLICAS}: must be a whole number >= 1")
    if ANN_MEMORY_POLICY in ann and ann[ANN_MEMORY_POLICY] not in ("Fixed", "Auto"):
        errs.append(f"{path}.metadata.annotations.{ANN_MEMORY_POLICY}: one of Fixed, Auto")
    if ANN_PLACEMENT in ann and ann[ANN_PLACEMENT] not in ("Pack", "Spread", "StrictSpread"):
        errs.append(f"{path}.metadata.annotations.{ANN_PLACEMENT}: one of Pack, Spread, StrictSpread")
    for j, p in enumerate(t.inputs.parameters):
        if p.enum is not None and p.default is not None and p.default not in p.enum:
            errs.append(f"{path}.inputs.parameters[{j}].default: {p.default!r} is not one of {p.enum}")
    for j, p in enumerate(t.outputs.parameters):
        vf = p.value_from
        if vf is None and p.value is None:
            errs.append(f"{path}.outputs.parameters[{j}].valueFrom: required")
        elif vf is not None and vf.path and leaf is None and t.container_set is None:
            errs.append(f"{path}.outputs.parameters[{j}].valueFrom.path: only container and "
                        "script templates write files; use valueFrom.parameter")
    invocations: list[tuple[str, Any]] = []
    if t.steps is not None:
        for g, group in enumerate(t.steps):
            seen: set[str] = set()
            for s, step in enumerate(group):
                invocations.append((f"{path}.steps[{g}][{s}]", step))
                if step.name in seen:
                    errs.append(f"{path}.steps[{g}][{s}].name: duplicate step name {step.name!r}")
                seen.add(step.name)
    if t.dag is not None:
        errs.extend(_check_dag(f"{path}.dag", t))
        invocations += [(f"{path}.dag.tasks[{k}]", task) for k, task in enumerate(t.dag.tasks)]
    for ipath, inv in invocations:
        if inv.template is None:
            errs.append(f"{ipath}.template: required (or templateRef, or inline)")
        ref(f"{ipath}.template", inv.template)
        ref(f"{ipath}.onExit", inv.on_exit)
        for hname, hook in (inv.hooks or {}).items():
            if hook.template is None:
                errs.append(f"{ipath}.hooks.{hname}.template: required (or templateRef)")
            ref(f"{ipath}.hooks.{hname}.template", hook.template)
            if hname != "exit" and not hook.expression:
                errs.append(f"{ipath}.hooks.{hname}.expression: required for a hook other than 'exit'")
            _expr_ok(f"{ipath}.hooks.{hname}.expression", hook.expression, errs)
        kinds = [n for n, v in (("withItems", inv.with_items), ("withParam", inv.with_param),
                                ("withSequence", inv.with_sequence)) if v is not None]
        if len(kinds) > 1:
            errs.append(f"{ipath}: only one of {', '.join(kinds)}")
        seq = inv.with_sequence
        if seq is not None and seq.count is not None and seq.end is not None:
            errs.append(f"{ipath}.withSequence: count and end are mutually exclusive")
        else:
            errs.extend(loops.check_static(ipath, inv, parameters or {}, max_loop_items))
        _expr_ok(f"{ipath}.when", inv.when, errs)  # the parser evaluate_when uses
    return errs


_REF = re.compile(r"{{\s*((inputs\.parameters|workflow\.parameters|tasks|steps)\.([^.}\s]+)[^}]*?)\s*}}")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _strings(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, f"{path}.{k}")]
    return []


def _check_refs(path: str, t: Template, workflow_params: set[str], library_doc: bool = False) -> list[str]:
    """References to undeclared inputs, workflow parameters, tasks or steps (as argo lint does)."""
    known = {
        "inputs.parameters": {p.name for p in t.inputs.parameters},
        "workflow.parameters": workflow_params | {"json"},
        "tasks": {k.name for k in t.dag.tasks} if t.dag else set(),
        "steps": {s.name for g in t.steps for s in g} if t.steps else set(),
    }
    errs: list[str] = []
    doc = t.model_dump(mode="json", by_alias=True, exclude_none=True)
    for where, text in _strings(doc, path):
        for m in _REF.finditer(text):
            full, kind, name = m.group(1), m.group(2), m.group(3)
            if name not in known[kind] and not (library_doc and kind == "workflow.parameters"):
                what = {"inputs.parameters": "an input parameter of this template",
                        "workflow.parameters": "a workflow parameter (spec.arguments.parameters)",
                        "tasks": "a task of this DAG", "steps": "a step of this template"}[kind]
                errs.append(f"{where}: {{{{{full}}}}}: {name!r} is not {what}")
    return errs


def _deps(task: DagTask) -> list[str]:
    if task.depends is not None:
        return expr.depends_names(task.depends)
    return list(task.dependencies or [])


def _check_dag(path: str, t: Template) -> list[str]:
    assert t.dag is not None
    errs: list[str] = []
    index = {task.name: k for k, task in enumerate(t.dag.tasks)}
    if len(index) != len(t.dag.tasks):
        seen: set[str] = set()
        for k, task in enumerate(t.dag.tasks):
            if task.name in seen:
                errs.append(f"{path}.tasks[{k}].name: duplicate task name {task.name!r}")
            seen.add(task.name)
    graph: dict[str, list[str]] = {}
    for k, task in enumerate(t.dag.tasks):
        tpath = f"{path}.tasks[{k}]"
        if task.depends is not None and task.dependencies is not None:
            errs.append(f"{tpath}: use either depends or dependencies, not both")
            continue
        field = "depends" if task.depends is not None else "dependencies"
        if task.depends is not None:
            try:
                expr.evaluate_depends(task.depends, lambda _t, _r: True)
            except expr.ExprError as e:
                errs.append(f"{tpath}.depends: {e}")
                continue
        deps = _deps(task)
        for d in deps:
            if d not in index:
                errs.append(f"{tpath}.{field}: task {d!r} is not defined in this DAG")
        graph[task.name] = [d for d in deps if d in index]
        if task.continue_on is not None and task.depends is not None:
            pass  # Argo suggests .Failed instead; accepted.
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = list(reversed(e.args[1]))
        first = t.dag.tasks[index[cycle[0]]]
        field = "depends" if first.depends is not None else "dependencies"
        errs.append(f"{path}.tasks[{index[cycle[0]]}].{field}: cycle {' -> '.join(cycle)}")
    if t.dag.target:
        for name in re.split(r"[\s,]+", t.dag.target.strip()):
            if name and name not in index and "{{" not in name:
                errs.append(f"{path}.target: task {name!r} is not defined in this DAG")
    return errs


def dag_deps(task: DagTask) -> list[str]:
    return _deps(task)


def dump_json(wf: Workflow) -> str:
    return json.dumps(wf.model_dump(mode="json", by_alias=True, exclude_none=True))
