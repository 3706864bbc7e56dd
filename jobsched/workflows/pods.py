"""A container/script template → a jobsched TrainingJob manifest, and its results → node outputs.

On the local backend a step runs on the host: ``command + args`` (container) or ``command + [file]``
where the file holds the script's ``source`` (script). Each step gets its own directory
``<workdir>/<namespace>/<workflow>/<node id>/``; a declared output path (``valueFrom.path: /tmp/x``)
is rewritten wherever it occurs in the command, args, env values and script source to
``<step dir>/outputs/tmp/x`` ($JOBSCHED_OUTPUTS_DIR + the path), so concurrent steps never collide.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jobsched.spec import yamlsafe
from jobsched.spec.api import JobStatus
from jobsched.spec.errors import SpecError
from jobsched.spec.quantity import memory_bytes
from jobsched.workflows.model import Template
from jobsched.workflows.util import (
    ANN_MAX_MEMORY,
    ANN_MEMORY_POLICY,
    ANN_PLACEMENT,
    ANN_PRIORITY,
    ANN_QUEUE,
    ANN_REPLICAS,
)

TRANSIENT = ("Evicted", "Lost", "NodeLost", "Preempted", "StartFailed")
ERROR_REASONS = (*TRANSIENT,)
WORKFLOW_LABEL = "jobsched.io/workflow"
NODE_LABEL = "jobsched.io/workflow-node"


def node_id(workflow: str, node_name: str) -> str:
    return f"{workflow}-{hashlib.sha1(node_name.encode()).hexdigest()[:10]}"


def job_name(workflow: str, node_name: str, retry: int) -> str:
    h = hashlib.sha1(node_name.encode()).hexdigest()[:10]
    return f"{workflow[:40].rstrip('-')}-{h}-{retry}"


def parse_patch(text: str) -> dict[str, Any]:
    try:
        doc, _ = yamlsafe.loads(text, "podSpecPatch")  # JSON is YAML
    except SpecError as e:
        raise ValueError(str(e)) from None
    if not isinstance(doc, dict):
        raise ValueError("podSpecPatch must be a mapping (a partial pod spec)")
    return doc


def apply_patch(container: dict[str, Any], patch: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Merge the ``main`` container's resources/env of a pod spec patch into ``container``; return
    pod-level settings jobsched acts on (activeDeadlineSeconds, nodeSelector)."""
    pod: dict[str, Any] = {}
    for key, value in patch.items():
        if key == "containers":
            for c in value or []:
                if c.get("name", "main") != "main":
                    notes.append(f"podSpecPatch: container {c.get('name')!r} ignored (only main)")
                    continue
                for ck, cv in c.items():
                    if ck == "resources":
                        res = container.setdefault("resources", {})
                        for part in ("requests", "limits"):
                            if part in cv:
                                res[part] = {**res.get(part, {}), **cv[part]}
                    elif ck == "env":
                        env = {e["name"]: e for e in container.get("env", [])}
                        env.update({e["name"]: e for e in cv})
                        container["env"] = list(env.values())
                    elif ck in ("command", "args", "image", "workingDir"):
                        container[ck] = cv
                    elif ck != "name":
                        notes.append(f"podSpecPatch: containers[main].{ck} ignored")
        elif key in ("activeDeadlineSeconds", "nodeSelector"):
            pod[key] = value
        else:
            notes.append(f"podSpecPatch: {key} ignored")
    return pod


def build_job(*, tmpl: Template, workflow: str, namespace: str, node_name: str, retry: int,
              step_dir: Path, wf_annotations: dict[str, str], patches: list[str],
              max_retries: int, memory_floor: int | None, notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The TrainingJob manifest for one attempt of a leaf node, and pod-level patch settings."""
    leaf = tmpl.leaf
    assert leaf is not None
    container = leaf.model_dump(mode="json", by_alias=True, exclude_none=True)
    pod: dict[str, Any] = {}
    for text in patches:
        pod.update(apply_patch(container, parse_patch(text), notes))
    outputs_dir = step_dir / "outputs"
    outputs_dir.mkdir(parents=True, exist_ok=True)
    mapping = output_paths(tmpl, step_dir)
    for mapped in mapping.values():
        mapped.parent.mkdir(parents=True, exist_ok=True)

    def rewrite(s: str) -> str:
        for declared, mapped in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
            s = s.replace(declared, str(mapped))
        return s

    argv = [rewrite(str(a)) for a in [*container.get("command", []), *container.get("args", [])]]
    args: list[str] = []
    if not container.get("command") and tmpl.script is None:  # the image's entrypoint runs with the args
        argv, args = [], argv  # (Kubernetes only: the controller refuses such a step elsewhere)
    if tmpl.script is not None and tmpl.script.source is not None:
        script = step_dir / f"script-{retry}"
        script.write_text(rewrite(tmpl.script.source))
        argv = [rewrite(str(a)) for a in container.get("command", [])] + [str(script)]
    env = {e["name"]: rewrite(str(e.get("value", ""))) for e in container.get("env", [])}
    env.update({"JOBSCHED_STEP_DIR": str(step_dir), "JOBSCHED_OUTPUTS_DIR": str(outputs_dir),
                "JOBSCHED_WORKFLOW": workflow, "JOBSCHED_RETRY": str(retry)})
    resources = container.get("resources", {})
    if not (resources.get("requests") or resources.get("limits")) and tmpl.pod_resources is not None:
        resources = tmpl.pod_resources.model_dump(mode="json", exclude_none=True)  # pod-level resources
    res = {k: {rk: rv for rk, rv in resources.get(k, {}).items()} for k in ("requests", "limits")
           if resources.get(k)}
    if memory_floor is not None:
        current = res.get("limits", {}).get("memory")
        if current is None or memory_bytes(current) < memory_floor:
            res.setdefault("limits", {})["memory"] = memory_floor
            req = res.get("requests", {}).get("memory")
            if req is not None and memory_bytes(req) > memory_floor:
                res["requests"]["memory"] = memory_floor
    ann = {**{k: v for k, v in wf_annotations.items() if k.startswith("jobsched.io/")},
           **tmpl.metadata.annotations}
    spec: dict[str, Any] = {
        "queue": ann.get(ANN_QUEUE, "default"),
        "priority": int(ann.get(ANN_PRIORITY, "0")),
        "replicas": int(ann.get(ANN_REPLICAS, "1")),
        "maxRetries": max_retries,
        "memoryPolicy": ann.get(ANN_MEMORY_POLICY, "Fixed"),
        "placement": ann.get(ANN_PLACEMENT, "Pack"),
        "rightSizing": {"family": f"wf-{tmpl.name}"[:63]},
        "template": {
            "command": argv, **({"args": args} if args else {}), "env": env, "workingDir": container.get("workingDir", str(step_dir)),
            "resources": res,
            "nodeSelector": {**tmpl.node_selector, **pod.get("nodeSelector", {})},
        },
    }
    if ANN_MAX_MEMORY in ann:
        spec["rightSizing"]["maxMemory"] = ann[ANN_MAX_MEMORY]
    if container.get("image"):
        spec["template"]["image"] = container["image"]
    manifest = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": job_name(workflow, node_name, retry), "namespace": namespace,
                     "labels": {WORKFLOW_LABEL: workflow, NODE_LABEL: node_id(workflow, node_name),
                                "jobsched.io/family": f"wf-{tmpl.name}"[:63]},
                     "annotations": {"jobsched.io/workflow-node-name": node_name}},
        "spec": spec,
    }
    return manifest, pod


def output_paths(tmpl: Template, step_dir: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in tmpl.outputs.parameters:
        if p.value_from is not None and p.value_from.path:
            out[p.value_from.path] = step_dir / "outputs" / p.value_from.path.lstrip("/")
    return out


def read_outputs(tmpl: Template, step_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Output parameters from their files; errors for missing files without a default."""
    values: dict[str, str] = {}
    errors: list[str] = []
    mapping = output_paths(tmpl, step_dir)
    for p in tmpl.outputs.parameters:
        vf = p.value_from
        if vf is not None and vf.path:
            f = mapping[vf.path]
            if f.is_file():
                values[p.name] = f.read_text().rstrip("\n")
            elif vf.default is not None:
                values[p.name] = vf.default
            else:
                errors.append(f"output parameter {p.name!r}: {vf.path} was not written")
        elif p.value is not None:
            values[p.name] = p.value
    return values, errors


def classify(st: JobStatus) -> tuple[str, int | None, str, str]:
    """(Argo phase Failed|Error, exit code, reason, message) of a finished, failed job."""
    last = st.attempts[-1] if st.attempts else None
    reason = (last.reason if last else None) or st.reason or st.phase.value
    exit_code = last.exit_code if last else None
    message = (last.message if last else None) or st.message or reason
    if reason == "OOMKilled":
        message = "OOMKilled (exit code 137)"
    phase = "Error" if reason in ERROR_REASONS else "Failed"
    return phase, exit_code, reason, message


def memory_after_oom(st: JobStatus, growth: float = 1.5) -> int | None:
    """The memory the next attempt gets after an OOM: the runtime's recommendation, else growth x."""
    rec = st.sizing.recommended_memory or st.sizing.chosen_memory
    last = st.attempts[-1] if st.attempts else None
    prev = last.resources.limits.get("memory") if last else None
    grown = int(prev * growth) if prev else None
    candidates = [v for v in (rec, grown) if v]
    return max(candidates) if candidates else None


def result_text(log: str) -> str:
    return log.rstrip("\n")


def jsonish(values: list[Any]) -> str:
    return json.dumps(values)
