"""Argo Workflow manifests (``argoproj.io/v1alpha1``, ``kind: Workflow``) as pydantic models.

Unknown fields are errors naming their path. Real Argo fields that jobsched accepts but does not act
on are declared in each model's ``IGNORED`` set: they parse, and :func:`ignored_fields` lists them so
that lint and submit can warn about them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator

from jobsched.spec.base import Model


def _to_str(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


Str = Annotated[str, BeforeValidator(_to_str)]


class ArgoModel(Model):
    IGNORED: ClassVar[frozenset[str]] = frozenset()


class ValueFrom(ArgoModel):
    path: str | None = None
    parameter: str | None = None
    default: Str | None = None
    expression: str | None = None
    IGNORED = frozenset({"jqFilter", "event", "configMapKeyRef"})
    json_path: Any = None
    jq_filter: Any = None
    event: Any = None
    config_map_key_ref: Any = None
    supplied: Any = None


class Parameter(ArgoModel):
    name: str = Field(min_length=1)
    value: Str | None = None
    default: Str | None = None
    enum: list[Str] | None = None
    value_from: ValueFrom | None = None
    description: str | None = None
    global_name: str | None = None


class Artifact(ArgoModel):
    """An artifact, checked against Argo v3.5's fields (an unknown one is a lint error, as in ``argo
    lint``) and then ignored: jobsched has no artifact repositories (its parent warns about it)."""

    name: str = Field(min_length=1)
    path: Any = None
    mode: Any = None
    from_: Any = Field(None, alias="from")
    archive_logs: Any = None
    s3: Any = None
    git: Any = None
    http: Any = None
    artifactory: Any = None
    hdfs: Any = None
    raw: Any = None
    oss: Any = None
    gcs: Any = None
    azure: Any = None
    global_name: Any = None
    archive: Any = None
    optional: Any = None
    sub_path: Any = None
    recurse_mode: Any = None
    from_expression: Any = None
    artifact_gc: Any = Field(None, alias="artifactGC")
    deleted: Any = None


class Arguments(ArgoModel):
    parameters: list[Parameter] = Field(default_factory=list)
    artifacts: list[Artifact] | None = None
    IGNORED = frozenset({"artifacts"})


class Inputs(Arguments):
    pass


class Outputs(ArgoModel):
    parameters: list[Parameter] = Field(default_factory=list)
    artifacts: list[Artifact] | None = None
    result: str | None = None
    exit_code: str | None = None
    IGNORED = frozenset({"artifacts"})


class EnvVar(ArgoModel):
    name: str = Field(min_length=1)
    value: Str = ""
    value_from: Any = None
    IGNORED = frozenset({"valueFrom"})


class Resources(ArgoModel):
    requests: dict[str, Str | int] = Field(default_factory=dict)
    limits: dict[str, Str | int] = Field(default_factory=dict)
    claims: Any = None
    IGNORED = frozenset({"claims"})


_CONTAINER_IGNORED = {"name", "volumeMounts", "imagePullPolicy", "ports", "securityContext",
                      "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "envFrom",
                      "stdin", "stdinOnce", "tty", "terminationMessagePath",
                      "terminationMessagePolicy", "volumeDevices", "resizePolicy", "restartPolicy"}


class Container(ArgoModel):
    image: str | None = None
    command: list[Str] = Field(default_factory=list)
    args: list[Str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: str | None = None
    resources: Resources = Field(default_factory=Resources)
    IGNORED = frozenset(_CONTAINER_IGNORED)
    name: Any = None
    volume_mounts: Any = None
    image_pull_policy: Any = None
    ports: Any = None
    security_context: Any = None
    liveness_probe: Any = None
    readiness_probe: Any = None
    startup_probe: Any = None
    lifecycle: Any = None
    env_from: Any = None
    stdin: Any = None
    stdin_once: Any = None
    tty: Any = None
    termination_message_path: Any = None
    termination_message_policy: Any = None
    volume_devices: Any = None
    resize_policy: Any = None
    restart_policy: Any = None


class SetContainer(Container):
    """A container of a ``containerSet``: named, and started once its ``dependencies`` succeeded."""

    name: Str = Field(min_length=1)
    dependencies: list[Str] = Field(default_factory=list)
    IGNORED = frozenset(_CONTAINER_IGNORED - {"name"})


class ContainerSet(ArgoModel):
    """Containers of one pod in Argo; in jobsched processes of one replica, run in dependency order by
    ``workers/containerset.py`` (the local backend; a server whose backend runs images refuses it)."""

    containers: list[SetContainer] = Field(min_length=1)
    volume_mounts: Any = None
    retry_strategy: Any = None
    IGNORED = frozenset({"volumeMounts", "retryStrategy"})

    def as_container(self) -> Container:
        import json
        import sys

        spec = [{"name": c.name, "argv": [*c.command, *c.args], "env": {e.name: e.value for e in c.env},
                 "cwd": c.working_dir, "dependencies": list(c.dependencies)} for c in self.containers]
        main = next((c for c in self.containers if c.name == "main"), self.containers[0])
        return Container(image=main.image, command=[sys.executable, "-m", "workers.containerset"],
                         args=[json.dumps(spec)], resources=_summed([c.resources for c in self.containers]))


def _summed(parts: list[Resources]) -> Resources:
    """A pod's request is its containers' together: cpu, memory and GPUs summed, others the largest."""
    from jobsched.spec.quantity import cpu_milli, memory_bytes, parse_quantity

    out: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for part in ("requests", "limits"):
        for r in parts:
            for key, value in getattr(r, part).items():
                cur = out[part].get(key)
                if key == "cpu":
                    out[part][key] = f"{(cpu_milli(cur) if cur is not None else 0) + cpu_milli(value)}m"
                elif key == "memory":
                    out[part][key] = (memory_bytes(cur) if cur is not None else 0) + memory_bytes(value)
                elif key.endswith("/gpu"):
                    out[part][key] = int(cur or 0) + int(parse_quantity(value))
                elif cur is None or parse_quantity(value) > parse_quantity(cur):
                    out[part][key] = value
    return Resources(requests=out["requests"], limits=out["limits"])


class Script(Container):
    source: str | None = None  # none: run command + args, like a container


class LifecycleHook(ArgoModel):
    """``hooks.<name>``: ``exit`` runs after the step/task/workflow; others run once, when their
    ``expression`` first holds."""

    template: str | None = None
    template_ref: TemplateRef | None = None
    arguments: Arguments = Field(default_factory=Arguments)
    expression: str | None = None


class TemplateRef(ArgoModel):
    name: str = Field(min_length=1)
    template: str = Field(min_length=1)
    cluster_scope: bool = False


class Backoff(ArgoModel):
    duration: Str | None = None
    factor: Str | None = None
    max_duration: Str | None = None
    cap: Str | None = None


class RetryStrategy(ArgoModel):
    limit: Str | None = None
    retry_policy: Literal["Always", "OnFailure", "OnError", "OnTransientError"] | None = None
    backoff: Backoff | None = None
    expression: str | None = None
    affinity: Any = None
    IGNORED = frozenset({"affinity"})


class Sequence(ArgoModel):
    count: Str | None = None
    start: Str | None = None
    end: Str | None = None
    format: str | None = None


class ContinueOn(ArgoModel):
    error: bool = False
    failed: bool = False


class _Invocation(ArgoModel):
    """What DAG tasks and steps share."""

    name: str = Field(min_length=1)
    template: str | None = None
    template_ref: TemplateRef | None = None
    inline: Any = None  # an unnamed template; refs.resolve names it and validates it as a Template
    arguments: Arguments = Field(default_factory=Arguments)
    when: Str | None = None
    with_items: list[Any] | None = None
    with_param: str | None = None
    with_sequence: Sequence | None = None
    continue_on: ContinueOn | None = None
    on_exit: str | None = None
    hooks: dict[str, LifecycleHook] | None = None

    @field_validator("name")
    @classmethod
    def _no_dots(cls, v: str) -> str:
        if any(c in v for c in ".{}[]() "):
            raise ValueError(f"{v!r}: names must not contain '.', braces, brackets or spaces")
        return v


class DagTask(_Invocation):
    dependencies: list[str] | None = None
    depends: str | None = None


class WorkflowStep(_Invocation):
    pass


class Dag(ArgoModel):
    tasks: list[DagTask] = Field(min_length=1)
    target: str | None = None
    fail_fast: bool | None = None


class TemplateMeta(ArgoModel):
    annotations: dict[str, Str] = Field(default_factory=dict)
    labels: dict[str, Str] = Field(default_factory=dict)


TEMPLATE_KINDS = ("container", "script", "dag", "steps")
UNSUPPORTED_KINDS = ("plugin",)


class DataTmpl(ArgoModel):
    """Argo's ``data``: list an artifact repository's files (``source.artifactPaths``) and filter or
    map them (``transformation``). Valid Argo, linted as such; refused at submit on every backend,
    since jobsched has no artifact repositories."""

    source: dict[str, Any]
    transformation: list[dict[str, Any]] = Field(default_factory=list)


class ResourceTmpl(ArgoModel):
    """A Kubernetes object to get/create/apply/delete/replace/patch (jobsched/workflows/resource.py)."""

    action: Str
    manifest: Str | None = None
    merge_strategy: Str | None = None
    success_condition: Str | None = None
    failure_condition: Str | None = None
    set_owner_reference: bool | None = None
    flags: list[Str] = Field(default_factory=list)
    manifest_from: Any = None
    IGNORED = frozenset({"manifestFrom", "setOwnerReference"})


class HttpHeader(ArgoModel):
    name: str = Field(min_length=1)
    value: Str | None = None
    value_from: Any = None  # secretKeyRef: a cluster's Secret
    IGNORED = frozenset({"valueFrom"})


class Http(ArgoModel):
    """An HTTP request (jobsched/workflows/httpstep.py); its response body is ``outputs.result``."""

    url: Str = Field(min_length=1)
    method: Str = "GET"
    headers: list[HttpHeader] = Field(default_factory=list)
    body: Str | None = None
    timeout_seconds: int | None = None
    success_condition: str | None = None
    insecure_skip_verify: bool = False
    body_from: Any = None
    IGNORED = frozenset({"bodyFrom"})


class Suspend(ArgoModel):
    """Wait: ``duration`` (seconds, or a Go duration such as "2m"), or until resumed
    (``jobsched workflow resume``), which may supply the node's ``valueFrom.supplied`` outputs."""

    duration: Str | None = None



class Template(ArgoModel):
    name: str = Field(min_length=1)
    inputs: Inputs = Field(default_factory=Inputs)
    outputs: Outputs = Field(default_factory=Outputs)
    container: Container | None = None
    script: Script | None = None
    dag: Dag | None = None
    steps: list[list[WorkflowStep]] | None = None
    resource: ResourceTmpl | None = None
    suspend: Suspend | None = None
    data: DataTmpl | None = None
    http: Http | None = None
    container_set: ContainerSet | None = None
    plugin: Any = None
    retry_strategy: RetryStrategy | None = None
    active_deadline_seconds: Str | None = None
    timeout: Str | None = None
    parallelism: int | None = None
    fail_fast: bool | None = None
    pod_spec_patch: str | None = None
    pod_resources: Resources | None = None  # pod-level resources: the step's, unless the container sets them
    metadata: TemplateMeta = Field(default_factory=TemplateMeta)
    node_selector: dict[str, str] = Field(default_factory=dict)
    IGNORED = frozenset({"volumes", "sidecars", "initContainers", "affinity", "tolerations",
                         "securityContext", "serviceAccountName", "archiveLocation", "daemon",
                         "synchronization", "memoize", "metrics", "hostAliases",
                         "priorityClassName", "priority", "schedulerName", "executor",
                         "automountServiceAccountToken"})
    volumes: Any = None
    sidecars: Any = None
    init_containers: Any = None
    affinity: Any = None
    tolerations: Any = None
    security_context: Any = None
    service_account_name: Any = None
    archive_location: Any = None
    daemon: Any = None
    synchronization: Any = None
    memoize: Any = None
    metrics: Any = None
    host_aliases: Any = None
    priority_class_name: Any = None
    priority: Any = None
    scheduler_name: Any = None
    executor: Any = None
    automount_service_account_token: Any = None

    def kinds(self) -> list[str]:
        names = {"container_set": "containerSet"}
        return [names.get(k, k) for k in (*TEMPLATE_KINDS, "resource", "suspend", "data", "http",
                                           "container_set", "plugin")
                if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        kinds = self.kinds()
        return kinds[0] if kinds else ""

    @property
    def leaf(self) -> Container | None:
        """What runs as the step's job: its container or script, or one container that runs a
        containerSet's containers as processes (workers/containerset.py)."""
        if self.container_set is not None:
            return self.container_set.as_container()
        return self.container or self.script


class WorkflowMeta(ArgoModel):
    name: str | None = None
    generate_name: str | None = None
    namespace: str = "default"
    labels: dict[str, Str] = Field(default_factory=dict)
    annotations: dict[str, Str] = Field(default_factory=dict)
    uid: Any = None
    resource_version: Any = None
    generation: Any = None
    creation_timestamp: Any = None
    managed_fields: Any = None
    IGNORED = frozenset()


class WorkflowTemplateRef(ArgoModel):
    name: str = Field(min_length=1)
    cluster_scope: bool = False


class WorkflowSpec(ArgoModel):
    entrypoint: str | None = None
    templates: list[Template] = Field(default_factory=list)
    arguments: Arguments = Field(default_factory=Arguments)
    on_exit: str | None = None
    parallelism: int | None = Field(None, ge=0)
    active_deadline_seconds: int | None = None
    pod_spec_patch: str | None = None
    pod_resources: Resources | None = None
    retry_strategy: RetryStrategy | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    workflow_template_ref: WorkflowTemplateRef | None = None
    hooks: dict[str, LifecycleHook] | None = None
    shutdown: Literal["Terminate", "Stop"] | None = None
    IGNORED = frozenset({"serviceAccountName", "volumes", "volumeClaimTemplates",
                         "imagePullSecrets", "affinity", "tolerations", "artifactRepositoryRef",
                         "ttlStrategy", "podGC", "securityContext", "hostNetwork", "dnsPolicy",
                         "dnsConfig", "priority", "podPriorityClassName", "schedulerName",
                         "archiveLogs", "metrics", "synchronization", "workflowMetadata",
                         "podMetadata", "volumeClaimGC", "artifactGC", "podDisruptionBudget",
                         "executor", "automountServiceAccountToken", "hostAliases",
                         "templateDefaults", "suspend", "podPriority", "shutdown"})
    service_account_name: Any = None
    volumes: Any = None
    volume_claim_templates: Any = None
    image_pull_secrets: Any = None
    affinity: Any = None
    tolerations: Any = None
    artifact_repository_ref: Any = None
    ttl_strategy: Any = None
    pod_gc: Any = Field(None, alias="podGC")
    security_context: Any = None
    host_network: Any = None
    dns_policy: Any = None
    dns_config: Any = None
    priority: Any = None
    pod_priority_class_name: Any = None
    scheduler_name: Any = None
    archive_logs: Any = None
    metrics: Any = None
    synchronization: Any = None
    workflow_metadata: Any = None
    pod_metadata: Any = None
    volume_claim_gc: Any = Field(None, alias="volumeClaimGC")
    artifact_gc: Any = Field(None, alias="artifactGC")
    pod_disruption_budget: Any = None
    executor: Any = None
    automount_service_account_token: Any = None
    host_aliases: Any = None
    template_defaults: Any = None
    suspend: Any = None
    pod_priority: Any = None


class Workflow(ArgoModel):
    api_version: Literal["argoproj.io/v1alpha1"]
    kind: Literal["Workflow"]
    metadata: WorkflowMeta = Field(default_factory=WorkflowMeta)
    spec: WorkflowSpec
    status: Any = Field(None, exclude=True)

    def template(self, name: str) -> Template | None:
        for t in self.spec.templates:
            if t.name == name:
                return t
        return None


class WorkflowTemplate(ArgoModel):
    """``WorkflowTemplate`` / ``ClusterWorkflowTemplate``: a library of templates (and a default
    spec) that workflows use through ``templateRef`` and ``spec.workflowTemplateRef``."""

    api_version: Literal["argoproj.io/v1alpha1"]
    kind: Literal["WorkflowTemplate", "ClusterWorkflowTemplate"]
    metadata: WorkflowMeta = Field(default_factory=WorkflowMeta)
    spec: WorkflowSpec
    status: Any = Field(None, exclude=True)


class CronWorkflowSpec(ArgoModel):
    schedule: str | None = None
    schedules: list[str] = Field(default_factory=list)
    timezone: str | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: int | None = Field(None, ge=0)
    successful_jobs_history_limit: int | None = Field(None, ge=0)
    failed_jobs_history_limit: int | None = Field(None, ge=0)
    suspend: bool = False
    workflow_spec: WorkflowSpec
    workflow_metadata: WorkflowMeta | None = None
    stop_strategy: Any = None
    when: str | None = None
    IGNORED = frozenset({"stopStrategy"})


class CronWorkflow(ArgoModel):
    api_version: Literal["argoproj.io/v1alpha1"]
    kind: Literal["CronWorkflow"]
    metadata: WorkflowMeta = Field(default_factory=WorkflowMeta)
    spec: CronWorkflowSpec
    status: Any = Field(None, exclude=True)


_Invocation.model_rebuild()
DagTask.model_rebuild()
WorkflowStep.model_rebuild()
Dag.model_rebuild()
Template.model_rebuild()
WorkflowSpec.model_rebuild()
Workflow.model_rebuild()


def ignored_fields(model: ArgoModel, path: str = "") -> list[str]:
    """Paths of the real Argo fields set in ``model`` that jobsched does not act on."""
    out: list[str] = []
    for fname, finfo in type(model).model_fields.items():
        value = getattr(model, fname)
        alias = finfo.alias or fname
        here = f"{path}.{alias}" if path else alias
        if value is None or value == [] or value == {}:
            continue
        if alias in model.IGNORED:
            out.append(here)
        elif isinstance(value, ArgoModel):
            out.extend(ignored_fields(value, here))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ArgoModel):
                    out.extend(ignored_fields(item, f"{here}[{i}]"))
                elif isinstance(item, list):
                    for j, sub in enumerate(item):
                        if isinstance(sub, ArgoModel):
                            out.extend(ignored_fields(sub, f"{here}[{i}][{j}]"))
    return out
