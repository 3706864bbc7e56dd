"""Kubernetes objects for Argo ``resource`` steps (jobsched/workflows/resource.py): get, create, apply,
delete, replace and patch any kind the API server serves, through the client's dynamic client
(discovery once, then cached). ``apply`` is server-side apply (field manager ``jobsched``), the
API server's own form of ``kubectl apply``. Errors come back as ``ObjectError`` with the API's reason.
"""

from __future__ import annotations

import threading
from typing import Any

FIELD_MANAGER = "jobsched"
_PATCH_TYPES = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
                "json": "application/json-patch+json"}


class ObjectError(RuntimeError):
    pass


class ObjectActions:
    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self._dyn: Any = None
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        with self._lock:
            if self._dyn is None:
                self._dyn = DynamicClient(self.api_client)
        try:
            return self._dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise ObjectError(f"the API server serves no {kind} in {api_version}") from None

    def act(self, action: str, obj: dict[str, Any], namespace: str, merge_strategy: str | None = None,
            ignore_not_found: bool = False) -> dict[str, Any]:
        """Do ``action`` with ``obj``; the object as the API server has it afterwards (for delete: as
        it was, or ``obj`` when it was not there and ``ignore_not_found``)."""
        from kubernetes.dynamic.exceptions import ApiException, NotFoundError

        res = self._resource(obj["apiVersion"], obj["kind"])
        ns = (obj.get("metadata") or {}).get("namespace") or namespace if res.namespaced else None
        name = (obj.get("metadata") or {}).get("name")
        try:
            if action == "create":
                out = res.create(body=obj, namespace=ns)
            elif action == "get":
                out = res.get(name=name, namespace=ns)
            elif action == "apply":
                out = res.server_side_apply(body=obj, name=name, namespace=ns, field_manager=FIELD_MANAGER,
                                            force_conflicts=True)
            elif action == "replace":
                current = res.get(name=name, namespace=ns).to_dict()
                body = {**obj, "metadata": {**obj.get("metadata", {}),
                                            "resourceVersion": current["metadata"]["resourceVersion"]}}
                out = res.replace(body=body, namespace=ns)
            elif action == "patch":
                strategy = merge_strategy or "strategic"
                body = obj.get("patch", obj) if strategy == "json" else obj
                out = res.patch(body=body, name=name, namespace=ns,
                                content_type=_PATCH_TYPES[strategy])
            elif action == "delete":
                current = res.get(name=name, namespace=ns).to_dict()
                res.delete(name=name, namespace=ns)
                return dict(current)
            else:
                raise ObjectError(f"unknown action {action!r}")
        except NotFoundError:
            if action == "delete" and ignore_not_found:
                return obj
            raise ObjectError(f"{obj['kind']} {name!r} not found") from None
        except ApiException as e:
            raise ObjectError(f"{action} {obj['kind']}: {e.status} {e.reason}: {_message(e)}") from None
        return dict(out.to_dict())

    def by_type(self, type_name: str) -> tuple[str, str]:
        """(apiVersion, kind) of a kubectl resource type: plural, singular, short name or kind, any
        case, optionally with its group (``pods``, ``pod``, ``po``, ``deployment.apps``)."""
        self._resource("v1", "Namespace")  # the dynamic client, discovered
        word, _, group = type_name.lower().partition(".")
        found = []
        for r in self._dyn.resources.search():
            if "/" in (r.name or "") or (group and r.group != group):
                continue
            names = {(r.name or "").lower(), (r.singular_name or "").lower(), r.kind.lower(),
                     *(x.lower() for x in (r.short_names or []))}
            if word in names:
                found.append(r)
        if not found:
            raise ObjectError(f"the API server serves no resource type {type_name!r}")
        best = next((r for r in found if getattr(r, "preferred", False)), found[0])
        return best.group_version, best.kind

    def act_on(self, action: str, type_name: str, name: str | None, selector: str | None, namespace: str,
               body: Any, merge_strategy: str | None = None, ignore_not_found: bool = False) -> dict[str, Any]:
        """kubectl's ``ACTION TYPE NAME`` / ``ACTION TYPE --selector S``: the object afterwards (for a
        delete by selector, ``{"deleted": [names]}``)."""
        from kubernetes.dynamic.exceptions import ApiException, NotFoundError

        api_version, kind = self.by_type(type_name)
        res = self._resource(api_version, kind)
        ns = namespace if res.namespaced else None
        try:
            if name is None:  # by label selector
                if action != "delete":
                    raise ObjectError(f"{action} by --selector: only delete takes a selector")
                items = res.get(namespace=ns, label_selector=selector).to_dict().get("items", [])
                for it in items:
                    res.delete(name=it["metadata"]["name"], namespace=ns)
                return {"deleted": [it["metadata"]["name"] for it in items]}
            if action == "patch":
                strategy = merge_strategy or "strategic"
                out = res.patch(body=body, name=name, namespace=ns, content_type=_PATCH_TYPES[strategy])
            elif action == "get":
                out = res.get(name=name, namespace=ns)
            elif action == "delete":
                current = res.get(name=name, namespace=ns).to_dict()
                res.delete(name=name, namespace=ns)
                return dict(current)
            else:
                obj = {"apiVersion": api_version, "kind": kind, **(body or {})}
                obj["metadata"] = {**obj.get("metadata", {}), "name": name}
                return self.act(action, obj, namespace, merge_strategy, ignore_not_found)
        except NotFoundError:
            if action == "delete" and ignore_not_found:
                return {"metadata": {"name": name}}
            raise ObjectError(f"{kind} {name!r} not found") from None
        except ApiException as e:
            raise ObjectError(f"{action} {kind}: {e.status} {e.reason}: {_message(e)}") from None
        return dict(out.to_dict())

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object now, or None when it is gone."""
        from kubernetes.dynamic.exceptions import ApiException, NotFoundError

        res = self._resource(api_version, kind)
        try:
            return dict(res.get(name=name, namespace=namespace if res.namespaced else None).to_dict())
        except NotFoundError:
            return None
        except ApiException as e:
            raise ObjectError(f"get {kind} {name!r}: {e.status} {e.reason}") from None


def _message(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", e.body))
    except (TypeError, ValueError, AttributeError):
        return str(getattr(e, "body", "") or "")[:300]
