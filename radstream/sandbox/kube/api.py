"""The API server's core: what it does to an object around storing it (admission, the PATCH
flavours, server-side apply, scale, disruption budgets and eviction, logs). HTTP requests and the
cluster's controllers both write through `Api`."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from radstream.sandbox.kube.admission import Admission
from radstream.sandbox.kube.errors import ApiError, bad_request, invalid, not_found
from radstream.sandbox.kube.kinds import Key, Kind, Obj, kind_of
from radstream.sandbox.kube.metadata import now_iso
from radstream.sandbox.kube.patches import apply_delta, json_patch, merge_patch, strategic_merge
from radstream.sandbox.kube.selectors import labels_match, selector_requirements, selector_string
from radstream.sandbox.kube.status import pod_ready
from radstream.sandbox.kube.store import Store

_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Budget:
    """What a PodDisruptionBudget allows right now."""

    expected: int
    healthy: int
    desired: int

    @property
    def allowed(self) -> int:
        return max(0, self.healthy - self.desired)


def _resolve_int_or_percent(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


class Api:
    """The API server's behaviour around the store, shared by HTTP requests and the controllers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # What a container printed, asked of the kubelet (which sets it) as the real server asks a node's.
        self.container_log: Callable[[Obj, str], bytes] | None = None
        self._applied: dict[tuple[Key, str], Obj] = {}  # last configuration each field manager applied
        self.admission = Admission()
        for name in _SYSTEM_NAMESPACES:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # verbs

    def create(self, obj: Obj) -> Obj:
        kind = kind_of(obj.get("apiVersion", ""), obj.get("kind", ""))
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})
        if "status" in kind.subresources:
            obj.pop("status", None)  # status is written through /status only
        self.admission.admit(kind, obj, None)
        created = self.store.create(obj)
        if kind.kind == "Namespace":
            self.store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": "default", "namespace": created["metadata"]["name"]}})
        return created

    def replace(self, obj: Obj, subresource: str | None = None, expect_rv: str | None = None) -> Obj:
        kind = kind_of(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        with self.store.lock:
            current = self.store.get(kind.api_version, kind.kind, meta.get("namespace"), meta.get("name", ""))
            if subresource == "status":
                new = copy.deepcopy(current)
                new["status"] = copy.deepcopy(obj.get("status"))
            else:
                new = copy.deepcopy(obj)
                if "status" in kind.subresources:
                    new["status"] = copy.deepcopy(current.get("status"))
                self.admission.admit(kind, new, current)
            if new.get("status") is None:
                new.pop("status", None)
            return self.store.update(new, expect_rv=expect_rv)

    def patch(self, kind: Kind, namespace: str | None, name: str, content_type: str, body: bytes,
              field_manager: str | None, subresource: str | None) -> tuple[int, Obj]:
        """Apply one PATCH request; returns (HTTP code, result). Server-side apply creates when missing."""
        media = content_type.split(";")[0].strip().lower()
        document = parse_body(body, yaml_allowed=media == "application/apply-patch+yaml")
        with self.store.lock:
            current = self.store.find(kind.api_version, kind.kind, namespace, name)
            if media == "application/apply-patch+yaml":
                if not field_manager:
                    raise bad_request("PATCH with apply requires the fieldManager parameter")
                return self._apply(kind, namespace, name, document, field_manager, current, subresource)
            if current is None:
                raise not_found(kind, name)
            base = scale_of(current) if subresource == "scale" else current
            if media == "application/json-patch+json":
                patched = json_patch(base, document)
            elif media == "application/merge-patch+json":
                patched = merge_patch(base, document)
            elif media == "application/strategic-merge-patch+json":
                patched = strategic_merge(base, document)
            else:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json")
            expect_rv = ((document.get("metadata") or {}).get("resourceVersion") if isinstance(document, dict) else None)
            if subresource == "scale":
                return 200, self.set_replicas(current, patched, expect_rv)
            self._keep_identity(kind, patched, namespace, name)
            return 200, self.replace(patched, subresource, expect_rv)

    def _apply(self, kind: Kind, namespace: str | None, name: str, applied: Any, manager: str,
               current: Obj | None, subresource: str | None) -> tuple[int, Obj]:
        if not isinstance(applied, dict):
            raise bad_request("an applied configuration must be an object")
        applied.setdefault("apiVersion", kind.api_version)
        applied.setdefault("kind", kind.kind)
        self._keep_identity(kind, applied, namespace, name)
        key: Key = (kind.api_version, kind.kind, namespace or "", name)
        entry = {"manager": manager, "operation": "Apply", "apiVersion": kind.api_version,
                 "time": now_iso(), "fieldsType": "FieldsV1", "fieldsV1": {}}
        if current is None:
            if subresource:
                raise not_found(kind, name)
            applied["metadata"]["managedFields"] = [entry]
            created = self.create(applied)
            self._applied[(key, manager)] = copy.deepcopy(applied)
            return 201, created
        last = self._applied.get((key, manager), {})
        merged = strategic_merge(current, apply_delta(last, applied))
        self._applied[(key, manager)] = copy.deepcopy(applied)
        if merged == current:
            return 200, current
        fields = [f for f in merged["metadata"].get("managedFields") or [] if f.get("manager") != manager]
        merged["metadata"]["managedFields"] = fields + [entry]
        return 200, self.replace(merged, subresource)

    @staticmethod
    def _keep_identity(kind: Kind, obj: Obj, namespace: str | None, name: str) -> None:
        """A patch may not move an object: name, namespace and type come from the URL."""
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        meta["name"] = name
        if namespace:
            meta["namespace"] = namespace
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind

    def delete(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        deleted = self.store.delete(kind.api_version, kind.kind, namespace, name)
        key: Key = (kind.api_version, kind.kind, namespace or "", name)
        for stale in [k for k in self._applied if k[0] == key]:
            del self._applied[stale]
        return deleted

    def set_replicas(self, deployment: Obj, scale: Obj, expect_rv: str | None) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(kind_of("apps/v1", "Deployment"), deployment["metadata"]["name"],
                          [("spec.replicas", "FieldValueInvalid", "Invalid value: must be greater than or equal to 0")])
        deployment = copy.deepcopy(deployment)
        deployment["spec"]["replicas"] = replicas
        return scale_of(self.store.update(deployment, expect_rv=expect_rv))

    # disruption budgets and eviction

    def disruption_budget(self, pdb: Obj) -> Budget:
        spec = pdb.get("spec") or {}
        if spec.get("selector") is None:
            return Budget(0, 0, 0)
        pods = [p for p in self.store.list("v1", "Pod", pdb["metadata"]["namespace"], selector_requirements(spec["selector"]))
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        expected = self._expected_pods(pods)
        healthy = sum(1 for p in pods if pod_ready(p))
        if "minAvailable" in spec:
            desired = _resolve_int_or_percent(spec["minAvailable"], expected)
        elif "maxUnavailable" in spec:
            desired = max(0, expected - _resolve_int_or_percent(spec["maxUnavailable"], expected))
        else:
            desired = 0
        return Budget(expected, healthy, desired)

    def _expected_pods(self, pods: list[Obj]) -> int:
        """Like the disruption controller: the scale of the pods' controllers, else the pods themselves."""
        expected, counted = 0, set()
        for pod in pods:
            owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
            if owner and owner.get("kind") == "Deployment":
                if owner["uid"] not in counted:
                    counted.add(owner["uid"])
                    deployment = self.store.find("apps/v1", "Deployment", pod["metadata"]["namespace"], owner["name"])
                    expected += deployment["spec"].get("replicas", 1) if deployment else 1
            else:
                expected += 1
        return expected

    def evict(self, namespace: str, name: str) -> Obj:
        with self.store.lock:
            pod = self.store.get("v1", "Pod", namespace, name)
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Pending", "Succeeded", "Failed"):  # like the real server: those skip budgets
                for pdb in self.store.list("policy/v1", "PodDisruptionBudget", namespace):
                    selector = (pdb.get("spec") or {}).get("selector")
                    if selector is None or not labels_match(selector_requirements(selector), pod["metadata"].get("labels")):
                        continue
                    budget = self.disruption_budget(pdb)
                    always = pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                    allowed = budget.allowed >= 1 if pod_ready(pod) else always or budget.healthy >= budget.desired
                    if not allowed:
                        raise ApiError(
                            429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                            {"causes": [{"reason": "DisruptionBudget",
                                         "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                                    f"{budget.desired} healthy pods and has {budget.healthy} currently"}]},
                        )
            self.delete(kind_of("v1", "Pod"), namespace, name)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


    # logs

    def pod_log(self, namespace: str, name: str, query: dict[str, str]) -> bytes:
        """GET pods/<name>/log: the container's output, checked and trimmed as the real server does."""
        pod = self.store.get("v1", "Pod", namespace, name)
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        status = next((s for s in (pod.get("status") or {}).get("containerStatuses") or [] if s["name"] == container), {})
        if "running" not in (status.get("state") or {}):
            reason = ((status.get("state") or {}).get("waiting") or {}).get("reason") or "ContainerCreating"
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        text = self.container_log(pod, container) if self.container_log else b""
        tail = query.get("tailLines")
        if tail is not None:
            if not tail.isdigit():
                raise bad_request("tailLines must be a non-negative number")
            text = b"".join(text.splitlines(keepends=True)[-int(tail):]) if int(tail) else b""
        return text


def scale_of(deployment: Obj) -> Obj:
    meta = deployment["metadata"]
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": deployment["spec"].get("replicas", 1)},
        "status": {"replicas": (deployment.get("status") or {}).get("replicas", 0),
                   "selector": selector_string(deployment["spec"].get("selector"))},
    }


def parse_body(body: bytes, yaml_allowed: bool = False) -> Any:
    if not body:
        raise bad_request("the request has no body")
    try:
        return json.loads(body)
    except ValueError:
        if not yaml_allowed:
            raise bad_request("the request body is not valid JSON") from None
    import yaml  # only applied YAML text needs it

    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise bad_request(f"the request body is not valid YAML: {error}") from None
