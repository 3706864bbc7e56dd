"""The Kubernetes-native surface against the real control plane: Queue CRs applied as kubectl does,
Events that ``kubectl describe`` lists, conditions, printer columns and the Kueue queue label."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s import test_backend as tb
from tests.k8s.conftest import BIN
from tests.k8s.test_backend import job, label, pods_of, set_outcome, until

crds, rt = tb.crds, tb.rt  # the real backend's fixtures (a Runtime on the test control plane)

pytestmark = pytest.mark.k8s
G, V = "jobsched.io", "v1alpha1"
KUEUE = "kueue.x-k8s.io/queue-name"


def kubectl_bin() -> Path | None:
    """The real kubectl (tools/k8s-testenv/build-kubectl.sh), if built: $K8S_TESTENV_KUBECTL, or
    kubectl in the control plane's bin directory."""
    explicit = os.environ.get("K8S_TESTENV_KUBECTL")
    path = Path(explicit) if explicit else Path(os.environ.get("K8S_TESTENV_BIN", str(BIN))) / "kubectl"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def kubectl(cluster, *args: str) -> str:
    exe = kubectl_bin()
    assert exe is not None
    proc = subprocess.run([str(exe), "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kubectl_apply(api, cluster, body: dict, tmp_path: Path) -> None:
    """``kubectl apply -f`` with the real kubectl when built; else what ``kubectl apply
    --server-side`` sends: an apply patch with field manager kubectl. Either way the API server fills
    metadata.managedFields, uid, generation, ..."""
    if kubectl_bin() is not None:
        path = tmp_path / f"{body['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(body))
        kubectl(cluster, "apply", "-f", str(path))
        return
    from kubernetes.dynamic import DynamicClient

    res = DynamicClient(api).resources.get(api_version=body["apiVersion"], kind=body["kind"])
    DynamicClient(api).server_side_apply(res, body=body, field_manager="kubectl", force_conflicts=True)


def describe_text(cluster, kind: str, name: str, namespace: str = "default") -> str | None:
    """``kubectl describe`` output when kubectl is built (None otherwise)."""
    if kubectl_bin() is None:
        return None
    return kubectl(cluster, "describe", kind, name, *(["-n", namespace] if namespace else []))


def describe_events(core, kind: str, name: str, namespace: str, uid: str) -> list:
    """The Events ``kubectl describe`` shows: its field selector (kubectl/pkg/describe searchEvents,
    client-go GetFieldSelector), in the object's namespace (all namespaces for a cluster-scoped one)."""
    sel = f"involvedObject.name={name},involvedObject.namespace={namespace},involvedObject.kind={kind}," \
          f"involvedObject.uid={uid}"
    if namespace:
        return core.list_namespaced_event(namespace, field_selector=sel).items
    return core.list_event_for_all_namespaces(field_selector=sel).items


def table(api, path: str) -> dict[str, dict[str, object]]:
    """What ``kubectl get`` prints: the API server's Table (printer columns), row by name."""
    req = api.param_serialize("GET", path, header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
                              auth_settings=["BearerToken"])
    data = json.loads(api.call_api(*req).read())
    cols = [c["name"] for c in data["columnDefinitions"]]
    return {r["cells"][0]: dict(zip(cols, r["cells"], strict=True)) for r in data["rows"]}


def get_tj(custom, name: str) -> dict:
    """The TrainingJob CR ({} while it is not there: an API submission's is mirrored asynchronously)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return custom.get_namespaced_custom_object(G, V, "default", "trainingjobs", name)
    except ApiException as e:
        if e.status == 404:
            return {}
        raise


def test_queue_applied_with_kubectl_is_imported_with_status_events_and_quota_reason(rt, k8s_cluster, tmp_path):
    pool, qname = label(), f"team-{label()}"
    k8s_cluster.add_nodes(1, cpu="8", memory="32Gi", labels={"pool": pool})
    until(lambda: any(n.labels.get("pool") == pool for n in rt.backend.nodes()), what="node seen")
    api, custom, core = rt.backend.api_client, rt.backend.custom, rt.backend.core
    kubectl_apply(api, k8s_cluster, {"apiVersion": f"{G}/{V}", "kind": "Queue", "metadata": {"name": qname},
                                     "spec": {"quota": {"cpu": "1"}, "defaultMemory": "2Gi"}}, tmp_path)
    obj = custom.get_cluster_custom_object(G, V, "queues", qname)
    assert obj["metadata"]["managedFields"]  # what the import used to refuse
    until(lambda: any(q.name == qname for q in rt.service.queues()), what="queue imported")

    # Both name the queue only through Kueue's label; the second waits on the queue's quota.
    for name in ("qa-first", "qa-second"):
        m = job(name, 1, pool, cpu="1")
        m["metadata"]["labels"] = {KUEUE: qname}
        custom.create_namespaced_custom_object(G, V, "default", "trainingjobs", m)
    until(lambda: get_tj(custom, "qa-first").get("status", {}).get("phase") == "Running",
          what=f"first running: {get_tj(custom, 'qa-first').get('status')}")
    st = until(lambda: (s := get_tj(custom, "qa-second").get("status", {})).get("reason") == "QuotaExceeded" and s,
               what="second pending on quota")
    assert st["phase"] == "Pending" and st["queue"] == qname
    admitted = next(c for c in st["conditions"] if c["type"] == "Admitted")
    assert admitted["status"] == "False" and admitted["reason"] == "QuotaExceeded"
    assert "quota" in admitted["message"]

    qst = until(lambda: (s := custom.get_cluster_custom_object(G, V, "queues", qname).get("status", {}))
                .get("pending") == 1 and s.get("admitted") == 1 and s, what="queue status")
    assert qst["usage"] == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "0"}
    assert qst["conditions"][0]["type"] == "Accepted" and qst["conditions"][0]["status"] == "True"
    assert qst["observedGeneration"] == obj["metadata"]["generation"]
    row = until(lambda: (r := table(api, f"/apis/{G}/{V}/queues").get(qname)) and r.get("Pending") == 1 and r,
                what="queue columns")
    assert (row["Weight"], row["Admitted"], row["CPU"], row["Memory"]) == (1, 1, "1", "1Gi")

    # kubectl describe queue: the admission; kubectl describe trainingjob: the job's own events.
    quid = obj["metadata"]["uid"]
    evs = until(lambda: describe_events(core, "Queue", qname, "", quid), what="queue events")
    assert any(e.reason == "Admitted" and "default/qa-first" in e.message for e in evs)
    tj = get_tj(custom, "qa-second")
    evs = until(lambda: [e for e in describe_events(core, "TrainingJob", "qa-second", "default",
                                                    tj["metadata"]["uid"]) if e.reason == "Pending"],
                what="pending event")
    assert "quota" in evs[0].message and evs[0].type == "Normal"
    text = describe_text(k8s_cluster, "trainingjob", "qa-second")
    if text is not None:  # the real kubectl describe
        events = text.split("\nEvents:", 1)[1]
        assert "Pending" in events and "quota exceeded" in events and "jobsched" in events
        assert "Admitted" in describe_text(k8s_cluster, "queue", qname, "").split("\nEvents:", 1)[1]

    # More than the quota allows even when idle: Failed, and the reason still says quota.
    too_big = job("qa-too-big", 1, pool, cpu="2", queue=qname)
    custom.create_namespaced_custom_object(G, V, "default", "trainingjobs", too_big)
    st = until(lambda: (s := get_tj(custom, "qa-too-big").get("status", {})).get("phase") == "Failed" and s,
               what="too big for the quota")
    assert st["reason"] == "QuotaExceeded" and "even when idle" in st["message"]
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "QuotaExceeded"

    # A Queue the spec refuses: its status says why (and the scheduler keeps going).
    kubectl_apply(api, k8s_cluster, {"apiVersion": f"{G}/{V}", "kind": "Queue", "metadata": {"name": f"{qname}-bad"},
                                     "spec": {"quota": {"cpu": "1"}, "defaultMemory": "1Ki"}}, tmp_path)
    bad = until(lambda: custom.get_cluster_custom_object(G, V, "queues", f"{qname}-bad").get("status"),
                what="refused queue's status")
    assert bad["conditions"][0]["status"] == "False" and "defaultMemory" in bad["conditions"][0]["message"]
    for name in ("qa-first", "qa-second"):
        rt.service.cancel("default", name)


def test_oom_events_on_trainingjob_and_pod_like_kubectl_describe(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="16Gi", labels={"pool": pool})
    until(lambda: any(n.labels.get("pool") == pool for n in rt.backend.nodes()), what="node seen")
    custom, core = rt.backend.custom, rt.backend.core
    custom.create_namespaced_custom_object(G, V, "default", "trainingjobs", job("ev-oom", 2, pool))
    pods = until(lambda: (ps := pods_of(core, "ev-oom")) and len(ps) == 2
                 and all(p.status.phase == "Running" for p in ps) and ps, what="running", rt=rt, name="ev-oom")
    victim = sorted(pods, key=lambda p: p.metadata.name)[0]
    set_outcome(core, [victim], "OOMKilled")
    until(lambda: len(rt.service.get("default", "ev-oom").attempts) == 2, what="second attempt")
    uid = get_tj(custom, "ev-oom")["metadata"]["uid"]

    def reasons():
        return {e.reason: e for e in describe_events(core, "TrainingJob", "ev-oom", "default", uid)}

    got = until(lambda: (r := reasons()) and {"Submitted", "Admitted", "OOMKilled", "Resized"} <= set(r) and r,
                what="TrainingJob events")
    assert got["OOMKilled"].type == "Warning" and got["Resized"].type == "Warning"
    assert got["OOMKilled"].source.component == "jobsched"
    text = describe_text(k8s_cluster, "trainingjob", "ev-oom")
    if text is not None:  # the real kubectl describe
        events = text.split("\nEvents:", 1)[1]
        assert "OOMKilled" in events and "Resized" in events and "Warning" in events
    mine = {(e.type, e.reason, e.message) for e in rt.service.events("default", "ev-oom")}
    assert all((e.type, e.reason, e.message) in mine for e in got.values())  # same as `jobsched events`
    # The replica that was OOM-killed has it on its pod, the other does not.
    def on_pod(pod):
        sel = f"involvedObject.kind=Pod,involvedObject.name={pod.metadata.name}"
        return [e.reason for e in core.list_namespaced_event("default", field_selector=sel).items]

    until(lambda: on_pod(victim) == ["OOMKilled"], what=f"OOMKilled on the pod: {on_pod(victim)}")
    other = next(p for p in pods if p.metadata.name != victim.metadata.name)
    assert on_pod(other) == []
    rt.service.cancel("default", "ev-oom")


def test_conditions_printer_columns_and_defaulted_queue(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="16Gi", labels={"pool": pool})
    until(lambda: any(n.labels.get("pool") == pool for n in rt.backend.nodes()), what="node seen")
    api, custom, core = rt.backend.api_client, rt.backend.custom, rt.backend.core
    custom.create_namespaced_custom_object(G, V, "default", "trainingjobs", job("cols", 1, pool, memory="8Gi"))
    pods = until(lambda: [p for p in pods_of(core, "cols") if p.status.phase == "Running"] or None, what="running")
    st = until(lambda: (s := get_tj(custom, "cols").get("status", {})).get("phase") == "Running" and s,
               what="Running written back")
    gen = get_tj(custom, "cols")["metadata"]["generation"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert {c: conds[c]["status"] for c in conds} == {"Admitted": "True", "Running": "True", "Succeeded": "False",
                                                     "Failed": "False"}
    assert all(c["lastTransitionTime"].endswith("Z") and c["observedGeneration"] == gen and c["reason"]
               for c in conds.values())
    row = table(api, f"/apis/{G}/{V}/namespaces/default/trainingjobs")["cols"]
    assert (row["Queue"], row["Replicas"], row["Memory"], row["Phase"]) == ("default", 1, "8Gi", "Running")
    assert st["attempts"][0]["memoryRequest"] == "8Gi"
    if kubectl_bin() is not None:  # the real kubectl get
        out = kubectl(k8s_cluster, "get", "tj", "cols", "--no-headers").split()
        assert out[:6] == ["cols", "default", "1", "Running", "1", "8Gi"]
    set_outcome(core, pods, "Succeeded")
    done = until(lambda: (s := get_tj(custom, "cols").get("status", {})).get("phase") == "Succeeded" and s,
                 what="Succeeded written back")
    after = {c["type"]: c for c in done["conditions"]}
    assert after["Admitted"]["lastTransitionTime"] == conds["Admitted"]["lastTransitionTime"]
    assert after["Succeeded"]["status"] == "True" and after["Running"]["status"] == "False"


def test_kueue_label_through_the_api_and_explicit_queue_wins(rt, k8s_cluster):
    pool, qname = label(), f"kq-{label()}"
    rt.service.apply_queue({"apiVersion": f"{G}/{V}", "kind": "Queue", "metadata": {"name": qname}})
    labelled = job("kueue-api", 1, pool)
    labelled["metadata"]["labels"] = {KUEUE: qname}
    assert rt.service.submit(labelled).queue == qname
    both = job("kueue-explicit", 1, pool, queue="default")
    both["metadata"]["labels"] = {KUEUE: qname}
    assert rt.service.submit(both).queue == "default"
    until(lambda: get_tj(rt.backend.custom, "kueue-api").get("status", {}).get("queue") == qname,
          what="mirrored CR's queue")
    for name in ("kueue-api", "kueue-explicit"):
        rt.service.cancel("default", name)
