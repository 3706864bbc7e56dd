"""manifests/: schema-valid (offline, against the OpenAPI v3 documents the test API server serves,
with unknown fields rejected like ``kubeconform -strict``), accepted by a real API server
(server-side apply, ``fieldValidation=Strict``), and RBAC that is exactly least privilege."""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
DATA = Path(__file__).parent / "data"
NS, SA = "jobsched-system", "jobsched-scheduler"
SA_USER = f"system:serviceaccount:{NS}:{SA}"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k manifests/` creates (resources + images; all we use)."""
    kust = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    images = {i["name"]: i for i in kust.get("images", [])}
    docs = [d for r in kust["resources"] for d in load(MANIFESTS / r)]
    for d in docs:
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            name = c["image"].split(":")[0]
            if name in images:
                c["image"] = f"{images[name].get('newName', name)}:{images[name]['newTag']}"
    return docs


def provider_docs() -> list[dict[str, Any]]:
    return [d for f in sorted((MANIFESTS / "providers").glob("*.yaml")) for d in load(f)]


def until(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (v := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return v


# offline schema validation ---------------------------------------------------------------------
def _strict(node: Any) -> Any:
    """Reject unknown fields: objects with ``properties`` get ``additionalProperties: false``
    (what kubeconform -strict does); ``nullable`` becomes a null alternative (OpenAPI 3.0)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and \
                not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


class SchemaSet:
    """The OpenAPI v3 documents of a running API server, indexed by group/version/kind; validation
    itself runs offline with jsonschema (Draft 2020-12, $refs resolved inside each document)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.docs: dict[str, dict[str, Any]] = {}
        self.by_gvk: dict[tuple[str, str, str], tuple[str, str]] = {}
        index = self._get("/openapi/v3")["paths"]
        self.paths = {p: v["serverRelativeURL"] for p, v in index.items()}

    def _get(self, url: str) -> dict[str, Any]:
        import json

        resp = self.api.call_api("GET", self.api.configuration.host + url,
                                 header_params={"Accept": "application/json"})
        return dict(json.loads(resp.read()))

    def load(self, api_version: str) -> str:
        path = f"api/{api_version}" if "/" not in api_version else f"apis/{api_version}"
        if path not in self.docs:
            doc = _strict(self._get(self.paths[path]))
            self.docs[path] = doc
            for name, s in doc["components"]["schemas"].items():
                for gvk in s.get("x-kubernetes-group-version-kind", []):
                    self.by_gvk[(gvk["group"], gvk["version"], gvk["kind"])] = (path, name)
        return path

    def errors(self, obj: dict[str, Any]) -> list[str]:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        path = self.load(obj["apiVersion"])
        group, _, version = obj["apiVersion"].rpartition("/")
        key = (group, version, obj["kind"])
        if key not in self.by_gvk:
            return [f"{obj['apiVersion']} {obj['kind']}: no schema served"]
        uri = f"urn:k8s:{path}"
        registry = Registry().with_resource(uri, Resource(self.docs[path], DRAFT202012))
        schema = {"$ref": f"{uri}#/components/schemas/{self.by_gvk[key][1]}"}
        v = Draft202012Validator(schema, registry=registry, format_checker=None)
        return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in v.iter_errors(obj)]


@pytest.fixture(scope="module")
def admin(k8s_cluster: Any) -> Any:
    """Admin client with the CRDs whose kinds we use installed (ours, and the Prometheus
    Operator's ServiceMonitor CRD v0.85.0 from tests/k8s/data)."""
    from kubernetes import client, utils

    api = k8s_cluster.api_client()
    crds = [*sorted((MANIFESTS / "crds").glob("*.yaml")), DATA / "prometheus-operator" /
            "monitoring.coreos.com_servicemonitors.yaml"]
    for f in crds:
        try:
            utils.create_from_yaml(api, str(f))
        except utils.FailToCreateError as e:
            if not all(x.status == 409 for x in e.api_exceptions):
                raise
    ext = client.ApiextensionsV1Api(api)
    names = ["trainingjobs.jobsched.io", "queues.jobsched.io", "servicemonitors.monitoring.coreos.com"]
    until(lambda: all(any(c.type == "Established" and c.status == "True"
                          for c in ext.read_custom_resource_definition(n).status.conditions or [])
                      for n in names), what="CRDs established")
    return api


@pytest.fixture(scope="module")
def schemas(admin: Any) -> SchemaSet:
    s = SchemaSet(admin)
    # CRD schemas are published asynchronously after Established
    until(lambda: "apis/monitoring.coreos.com/v1" in SchemaSet(admin).paths, what="ServiceMonitor schema")
    return SchemaSet(admin) if "apis/monitoring.coreos.com/v1" not in s.paths else s


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    on_disk = {str(p.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("*.yaml")
               if p.name != "kustomization.yaml" and p.parent.name != "providers"}
    assert listed == on_disk
    kinds = sorted(d["kind"] for d in kustomization())
    assert kinds == sorted(["CustomResourceDefinition", "CustomResourceDefinition", "Namespace", "ServiceAccount",
                            "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
                            "ServiceMonitor"])


def test_manifests_match_the_openapi_schemas(schemas: SchemaSet) -> None:
    for d in kustomization() + provider_docs():
        assert schemas.errors(d) == [], f"{d['kind']}/{d['metadata']['name']}"


def test_schema_check_catches_typos_and_wrong_types(schemas: SchemaSet) -> None:
    dep = copy.deepcopy(next(d for d in kustomization() if d["kind"] == "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    dep["spec"]["replicas"] = "one"
    errs = schemas.errors(dep)
    assert any("imagePullPolicyy" in e for e in errs) and any(e.startswith("spec.replicas:") for e in errs)
    sm = copy.deepcopy(next(d for d in kustomization() if d["kind"] == "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["bearerTokenSecrett"] = {}
    assert any("bearerTokenSecrett" in e for e in schemas.errors(sm))


def test_scheduler_deployment_contract() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in kustomization()}
    pod = docs[("Deployment", SA)]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["jobsched", "server", "--backend", "kubernetes", "--host", "0.0.0.0"]
    assert pod["serviceAccountName"] == SA and c["ports"][0]["containerPort"] == 8470
    # every HTTP path needs the bearer token: probes must not be httpGet
    assert all("tcpSocket" in c[p] for p in ("readinessProbe", "livenessProbe", "startupProbe"))
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    svc = docs[("Service", SA)]["spec"]
    assert svc["selector"] == docs[("Deployment", SA)]["spec"]["selector"]["matchLabels"]
    sm = docs[("ServiceMonitor", SA)]["spec"]
    assert sm["endpoints"][0]["port"] == svc["ports"][0]["name"] and sm["endpoints"][0]["path"] == "/metrics"


def _apply(admin: Any, docs: list[dict[str, Any]], dry_run: bool) -> None:
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(admin)
    q = [("fieldManager", "jobsched-test"), ("fieldValidation", "Strict"), *([("dryRun", "All")] if dry_run else [])]
    for d in docs:
        res = dyn.resources.get(api_version=d["apiVersion"], kind=d["kind"])
        dyn.server_side_apply(res, body=d, namespace=d["metadata"].get("namespace"), query_params=q,
                              force_conflicts=True)


def test_api_server_accepts_the_manifests_strictly(admin: Any) -> None:
    from kubernetes.dynamic.exceptions import ApiException

    docs = [d for d in kustomization() if d["kind"] != "CustomResourceDefinition"]
    _apply(admin, [d for d in docs if d["kind"] == "Namespace"], dry_run=False)
    _apply(admin, docs + provider_docs(), dry_run=True)
    bad = copy.deepcopy(next(d for d in docs if d["kind"] == "Service"))
    bad["spec"]["portz"] = []
    with pytest.raises(ApiException, match="portz: field not declared in schema"):
        _apply(admin, [bad], dry_run=True)


# RBAC ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def applied(admin: Any) -> Any:
    docs = [d for d in kustomization() if d["kind"] != "CustomResourceDefinition"]
    _apply(admin, docs, dry_run=False)
    return admin


def _rules(admin: Any, user: str, namespace: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the user may use in ``namespace`` (SelfSubjectRulesReview,
    impersonated)."""
    from kubernetes import client

    imp = client.ApiClient(admin.configuration)
    imp.set_default_header("Impersonate-User", user)
    review = client.AuthorizationV1Api(imp).create_self_subject_rules_review(
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}})
    return {(g, r, v) for rule in review.status.resource_rules for g in rule.api_groups or [""]
            for r in rule.resources or [] for v in rule.verbs}


EXPECTED = {("", "nodes", v) for v in ("get", "list", "watch")} | \
    {("", "pods", v) for v in ("create", "delete", "get", "list", "watch")} | \
    {("", "pods/binding", "create"), ("", "pods/log", "get"), ("", "events", "create")} | \
    {("", r, v) for r in ("services", "persistentvolumeclaims") for v in ("create", "get", "delete")} | \
    {("", "persistentvolumeclaims", "deletecollection")} | \
    {("jobsched.io", r, v) for r in ("trainingjobs", "queues") for v in ("get", "list", "watch", "create")} | \
    {("jobsched.io", "trainingjobs/status", v) for v in ("patch", "update")} | {("jobsched.io", "queues/status", "patch")}
LEASES = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def test_rbac_grants_exactly_what_the_backend_uses(applied: Any) -> None:
    """What the ServiceAccount may do, minus what every authenticated user may do, is exactly
    the list in the issue; leases only in the scheduler's namespace."""
    base = _rules(applied, f"system:serviceaccount:{NS}:nobody-{uuid.uuid4().hex[:6]}", NS)
    assert _rules(applied, SA_USER, NS) - base == EXPECTED | LEASES
    assert _rules(applied, SA_USER, "default") - base == EXPECTED


def test_docs_rbac_table_lists_exactly_what_is_granted() -> None:
    """docs/kubernetes.md's RBAC table is the same list (no cluster needed)."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    table = text.split("### RBAC: least privilege", 1)[1].split("###", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| API group")]
    documented = {(g.strip('"').replace('""', ""), r.strip(), v.strip())
                  for g, res, verbs, _ in rows for r in res.split(",") for v in verbs.split(",")}
    assert documented == EXPECTED | LEASES


@pytest.mark.parametrize(("verb", "group", "resource", "namespace", "allowed"), [
    ("create", "", "pods/binding", "team-a", True),
    ("watch", "", "nodes", "", True),
    ("update", "coordination.k8s.io", "leases", NS, True),
    ("update", "coordination.k8s.io", "leases", "default", False),
    ("delete", "coordination.k8s.io", "leases", NS, False),
    ("get", "", "secrets", NS, False),
    ("list", "", "secrets", "default", False),
    ("patch", "", "pods", "default", False),
    ("create", "", "pods/exec", "default", False),
    ("create", "", "pods/eviction", "default", False),
    ("delete", "", "nodes", "", False),
    ("delete", "jobsched.io", "trainingjobs", "default", False),
    ("create", "apps", "deployments", "default", False),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", False),
])
def test_subject_access_review(applied: Any, verb: str, group: str, resource: str, namespace: str,
                               allowed: bool) -> None:
    from kubernetes import client

    res, _, sub = resource.partition("/")
    review = client.AuthorizationV1Api(applied).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": SA_USER, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}",
                                             "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "group": group, "resource": res, "subresource": sub,
                                        "namespace": namespace}}})
    assert review.status.allowed is allowed


def test_backend_runs_under_the_service_account(applied: Any, k8s_cluster: Any, tmp_path: Path) -> None:
    """The real backend with the ServiceAccount's token (TokenRequest): leader election in the
    scheduler namespace, CR import, binding, status write-back all work; nothing more is needed."""
    from kubernetes import client

    from jobsched.server.runtime import Runtime

    core = client.CoreV1Api(applied)
    token = core.create_namespaced_service_account_token(
        SA, NS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                 "spec": {"expirationSeconds": 3600}}).status.token
    cfg = yaml.safe_load(Path(k8s_cluster.kubeconfig).read_text())
    cfg["users"] = [{"name": "sa", "user": {"token": token}}]
    for ctx in cfg["contexts"]:
        ctx["context"]["user"] = "sa"
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cfg))
    pool = uuid.uuid4().hex[:8]
    k8s_cluster.add_nodes(1, cpu="4", memory="8Gi", labels={"pool": pool})
    rt = Runtime(tmp_path / "home", backend="kubernetes", backend_options={
        "kubeconfig": str(kubeconfig), "lease_namespace": NS, "lease_name": f"js-{pool}"})
    rt.start()
    try:
        until(rt.backend.is_leader, what="leadership under the ServiceAccount")
        lease = client.CoordinationV1Api(applied).read_namespaced_lease(f"js-{pool}", NS)
        assert lease.spec.holder_identity == rt.backend.identity
        name = f"rbac-{pool}"
        client.CustomObjectsApi(applied).create_namespaced_custom_object(
            "jobsched.io", "v1alpha1", "default", "trainingjobs",
            {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
             "spec": {"replicas": 2, "template": {"command": ["python", "-m", "workers.train"],
                                                  "image": "jobsched/worker:dev", "nodeSelector": {"pool": pool},
                                                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}})
        sel = f"jobsched.io/job={name}"
        pods = until(lambda: len(ps := [p for p in core.list_namespaced_pod("default", label_selector=sel).items
                                        if p.status.phase == "Running"]) == 2 and ps, what="pods bound")
        for p in pods:
            core.patch_namespaced_pod(p.metadata.name, "default",
                                      {"metadata": {"annotations": {"jobsched.io/kwok-outcome": "Succeeded"}}})
        until(lambda: client.CustomObjectsApi(applied).get_namespaced_custom_object(
            "jobsched.io", "v1alpha1", "default", "trainingjobs", name).get("status", {}).get("phase") == "Succeeded",
            what="CR status written back")
        # `jobsched delete` under the same token: the pods (listed, then deleted one by one: no
        # deletecollection is granted on pods) and the rendezvous Service go.
        rt.backend.forget(f"default/{name}", pods[0].metadata.labels["jobsched.io/job-uid"])
        until(lambda: not core.list_namespaced_pod("default", label_selector=sel).items, what="pods deleted")
        assert not [s for s in core.list_namespaced_service("default").items if s.metadata.name.startswith(name)]
    finally:
        rt.stop()
