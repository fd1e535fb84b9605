"""The API server of the Kubernetes emulator: admission, patches, eviction, and the REST paths.

`Api` is the server's core (what a real API server does to an object before and after storing it);
the kubelet simulation writes through it too. `ApiHttpServer` serves it over HTTP on loopback with
the paths, verbs, content types and Status errors the official `kubernetes` client uses.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from radstream.kube.client import EKS_TOKEN_LIFETIME_SECONDS
from radstream.sandbox.kube.eks_auth import token_problem
from radstream.sandbox.kube.tables import table
from radstream.sandbox.kube.store import (
    KINDS,
    ApiError,
    Gone,
    Kind,
    Key,
    Obj,
    Store,
    invalid,
    fields_match,
    kind_of,
    label_problems,
    labels_match,
    not_found,
    now_iso,
    parse_field_selector,
    parse_label_selector,
    selector_requirements,
    selector_string,
)

log = logging.getLogger(__name__)

SERVER_VERSION = {
    "major": "1", "minor": "30", "gitVersion": "v1.30.0-radstream-sandbox", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2",
    "compiler": "gc", "platform": "linux/amd64",
}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
WATCH_TIMEOUT_DEFAULT = 1800.0
HANDSHAKE_SECONDS = 10.0


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# --- patches ------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    """The key a strategic merge uses for a list field, or None when the list is atomic."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
            "imagePullSecrets": "name", "volumeMounts": "mountPath", "conditions": "type"}.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Merge patch, except that known lists (containers, env, ports, ...) merge item by key.

    Honours the `$patch: replace` and per-item `$patch: delete` directives.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for field, value in patch.items():
        if field.startswith("$"):
            continue
        current = result.get(field)
        if value is None:
            result.pop(field, None)
        elif isinstance(value, list) and (key := _merge_key(field, value + (current if isinstance(current, list) else []))):
            result[field] = _merge_list(current if isinstance(current, list) else [], value, key)
        else:
            result[field] = strategic_merge(current, value)
    return result


def _merge_list(current: list[Obj], patch: list[Obj], key: str) -> list[Obj]:
    merged = [copy.deepcopy(i) for i in current]
    for item in patch:
        position = next((n for n, old in enumerate(merged) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
        elif position is None:
            merged.append(strategic_merge(None, item))
        else:
            merged[position] = strategic_merge(merged[position], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path and not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            name, parts = op["op"], _pointer(op["path"])
            if name in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if name == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                name, op = "add", {"value": value}
            if name == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
                continue
            if not parts:
                doc = copy.deepcopy(op["value"]) if name in ("add", "replace") else None
                continue
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if name == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif name in ("add", "replace"):
                value = copy.deepcopy(op["value"])
                if isinstance(parent, list):
                    if name == "add":
                        parent.insert(len(parent) if last == "-" else int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    if name == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = value
            else:
                raise bad_request(f"unknown JSON patch operation {name!r}")
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise ApiError(422, "Invalid", f"JSON patch operation {op!r} failed: {error!r}") from None
    return doc


def _apply_delta(last: Any, new: Any) -> Any:
    """The strategic patch turning what a manager applied last time into what it applies now.

    New values win; fields (and keyed list items) the manager applied before but no longer applies
    are deleted: the part of server-side apply's field ownership this emulator models.
    """
    if not (isinstance(last, dict) and isinstance(new, dict)):
        return new
    delta: Obj = {}
    for field, value in new.items():
        old = last.get(field)
        key = _merge_key(field, value + old) if isinstance(value, list) and isinstance(old, list) else None
        if key:
            previous = {item.get(key): item for item in old}
            kept = {item.get(key) for item in value}
            delta[field] = [_apply_delta(previous.get(item.get(key)), item) for item in value] + [
                {key: gone, "$patch": "delete"} for gone in previous if gone not in kept
            ]
        else:
            delta[field] = _apply_delta(old, value)
    for field in last:
        if field not in new:
            delta[field] = None
    return delta


# --- admission: defaults and validation ---------------------------------------------------------


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _image_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_pod_spec(spec: Obj) -> None:
    for field, value in (("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                         ("schedulerName", "default-scheduler"), ("terminationGracePeriodSeconds", 30),
                         ("securityContext", {}), ("serviceAccountName", "default")):
        spec.setdefault(field, value)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image") or ""))
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _qos_class(spec: Obj) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all((r.get("limits") or {}).get(name) and (r.get("requests") or r.get("limits")).get(name)
            == r["limits"][name] for name in ("cpu", "memory"))
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_spec_problems(spec: Any, field: str) -> list[tuple[str, str, str]]:
    containers = (spec or {}).get("containers") if isinstance(spec, dict) else None
    if not containers:
        return [(f"{field}.containers", "FieldValueRequired", "Required value")]
    causes = []
    for n, container in enumerate(containers):
        for required in ("name", "image"):
            if not container.get(required):
                causes.append((f"{field}.containers[{n}].{required}", "FieldValueRequired", "Required value"))
    return causes


def _workload_problems(obj: Obj) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not selector_requirements(selector):
        return [("spec.selector", "FieldValueRequired", "Required value")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes = label_problems(labels, "spec.template.metadata.labels")
    if not labels_match(selector_requirements(selector), labels):
        causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                       f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    return causes + _pod_spec_problems(template.get("spec"), "spec.template.spec")


def _kind_problems(obj: Obj) -> list[tuple[str, str, str]]:
    kind, spec = obj["kind"], obj.get("spec") or {}
    if kind == "Pod":
        return _pod_spec_problems(obj.get("spec"), "spec")
    if kind in ("Deployment", "DaemonSet"):
        return _workload_problems(obj)
    if kind == "Service":
        return [(f"spec.ports[{n}].port", "FieldValueInvalid", f"Invalid value: {p.get('port')!r}: must be between 1 and 65535")
                for n, p in enumerate(spec.get("ports") or [])
                if not (isinstance(p.get("port"), int) and 0 < p["port"] < 65536)]
    if kind == "HorizontalPodAutoscaler":
        causes = []
        if not (spec.get("scaleTargetRef") or {}).get("name"):
            causes.append(("spec.scaleTargetRef.name", "FieldValueRequired", "Required value"))
        if not isinstance(spec.get("maxReplicas"), int) or spec["maxReplicas"] < 1:
            causes.append(("spec.maxReplicas", "FieldValueInvalid", "Invalid value: must be greater than or equal to 1"))
        return causes
    if kind == "PodDisruptionBudget" and "minAvailable" in spec and "maxUnavailable" in spec:
        return [("spec", "FieldValueInvalid", "Invalid value: minAvailable and maxUnavailable cannot be both set")]
    return []


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
        self._cluster_ips = itertools.count(10)
        self._node_ports = itertools.count(30080)
        for name in _SYSTEM_NAMESPACES:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # admission

    def _admit(self, kind: Kind, obj: Obj, current: Obj | None) -> None:
        """Validate and default `obj` in place (`current` is the stored version on updates)."""
        causes = _kind_problems(obj)
        if causes:
            raise invalid(kind, (obj.get("metadata") or {}).get("name") or "", causes)
        spec = obj.setdefault("spec", {}) if kind.kind not in ("ConfigMap", "Secret", "ServiceAccount", "Event") else {}
        if kind.kind == "Namespace":
            name = obj["metadata"].get("name")
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            spec.setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {"phase": "Active"})
        elif kind.kind == "Pod":
            _default_pod_spec(spec)
            obj.setdefault("status", {"phase": "Pending", "qosClass": _qos_class(spec)})
        elif kind.kind in ("Deployment", "DaemonSet"):
            _default_pod_spec(spec["template"].setdefault("spec", {}))
            spec.setdefault("revisionHistoryLimit", 10)
            if kind.kind == "Deployment":
                spec.setdefault("replicas", 1)
                spec.setdefault("progressDeadlineSeconds", 600)
                strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
                if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                    strategy.setdefault("rollingUpdate", {}).setdefault("maxSurge", "25%")
                    strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
                obj.setdefault("status", {})
            else:
                spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
                obj.setdefault("status", {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                                          "numberMisscheduled": 0, "numberReady": 0})
        elif kind.kind == "Service":
            self._default_service(spec, (current or {}).get("spec") or {})
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind.kind == "HorizontalPodAutoscaler":
            spec.setdefault("minReplicas", 1)

    def _default_service(self, spec: Obj, current: Obj) -> None:
        spec.setdefault("type", "ClusterIP")
        for field, value in (("sessionAffinity", "None"), ("ipFamilies", ["IPv4"]),
                             ("ipFamilyPolicy", "SingleStack"), ("internalTrafficPolicy", "Cluster")):
            spec.setdefault(field, value)
        if not spec.get("clusterIP"):
            n = next(self._cluster_ips)
            spec["clusterIP"] = current.get("clusterIP") or f"10.100.{n // 250}.{n % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        old_node_ports = {p.get("port"): p.get("nodePort") for p in current.get("ports") or []}
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = old_node_ports.get(port.get("port")) or next(self._node_ports)
        if spec["type"] == "LoadBalancer":
            spec.setdefault("externalTrafficPolicy", "Cluster")
            spec.setdefault("allocateLoadBalancerNodePorts", True)

    # verbs

    def create(self, obj: Obj) -> Obj:
        kind = kind_of(obj.get("apiVersion", ""), obj.get("kind", ""))
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})
        if "status" in kind.subresources:
            obj.pop("status", None)  # status is written through /status only
        self._admit(kind, obj, None)
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
                self._admit(kind, new, current)
            if new.get("status") is None:
                new.pop("status", None)
            return self.store.update(new, expect_rv=expect_rv)

    def patch(self, kind: Kind, namespace: str | None, name: str, content_type: str, body: bytes,
              field_manager: str | None, subresource: str | None) -> tuple[int, Obj]:
        """Apply one PATCH request; returns (HTTP code, result). Server-side apply creates when missing."""
        media = content_type.split(";")[0].strip().lower()
        document = _parse_body(body, yaml_allowed=media == "application/apply-patch+yaml")
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
        merged = strategic_merge(current, _apply_delta(last, applied))
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


def _parse_body(body: bytes, yaml_allowed: bool = False) -> Any:
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


# --- routing ------------------------------------------------------------------------------------


@dataclass
class Route:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


def _group_versions() -> dict[str, list[Kind]]:
    versions: dict[str, list[Kind]] = {}
    for kind in KINDS:
        versions.setdefault(kind.api_version, []).append(kind)
    return versions


_GROUP_VERSIONS = _group_versions()


def resolve(path: str) -> Route | Obj:
    """Map a URL path to a resource route, or return the discovery document it names."""
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return SERVER_VERSION
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(gv) for gv in _GROUP_VERSIONS if "/" in gv]}
    if parts[:1] == ["api"] and len(parts) >= 2:
        group_version, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) == 2:
        matching = [gv for gv in _GROUP_VERSIONS if gv.startswith(parts[1] + "/")]
        if matching:
            return _group(matching[0]) | {"kind": "APIGroup", "apiVersion": "v1"}
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    kinds = {k.plural: k for k in _GROUP_VERSIONS.get(group_version, [])}
    if not kinds:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if not rest:
        return _resource_list(group_version)
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in kinds and kinds[rest[2]].namespaced:
        namespace, rest = rest[1], rest[2:]
    if rest[0] not in kinds or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    kind = kinds[rest[0]]
    subresource = rest[2] if len(rest) == 3 else None
    if subresource and subresource not in kind.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(kind, namespace, rest[1] if len(rest) > 1 else None, subresource)


def _group(group_version: str) -> Obj:
    group, version = group_version.split("/")
    entry = {"groupVersion": group_version, "version": version}
    return {"name": group, "versions": [entry], "preferredVersion": entry}


def _resource_list(group_version: str) -> Obj:
    resources = []
    for kind in _GROUP_VERSIONS[group_version]:
        resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                          "kind": kind.kind, "verbs": _VERBS, "shortNames": list(kind.short_names)})
        for sub in kind.subresources:
            entry = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                     "kind": kind.kind, "verbs": ["get", "patch", "update"]}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "eviction":
                entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            elif sub == "log":
                entry.update(kind="Pod", verbs=["get"])
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _selectors(query: dict[str, str]) -> tuple[Any, Any]:
    try:
        return parse_label_selector(query.get("labelSelector")), parse_field_selector(query.get("fieldSelector"))
    except ValueError as error:
        raise bad_request(str(error)) from None


def handle(api: Api, method: str, path: str, query: dict[str, str], content_type: str, body: bytes,
           accept: str = "application/json") -> tuple[int, Obj | Iterator[bytes] | bytes]:
    """One authenticated request: (HTTP status, JSON document, an iterator of watch lines, or the
    plain text of a log). A GET whose Accept asks for a Table (kubectl get) gets one."""
    target = resolve(path)
    if not isinstance(target, Route):
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        return 200, target
    kind, ns, name, sub = target.kind, target.namespace, target.name, target.subresource
    if kind.namespaced and name is not None and ns is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    store = api.store
    if name is None:
        labels, fields = _selectors(query)
        if method == "GET" and query.get("watch") in ("true", "1", "True"):
            return 200, _watch_lines(store, kind, ns, labels, fields, query)
        if method == "GET":
            with store.lock:
                items = store.list(kind.api_version, kind.kind, ns, labels, fields)
                rv = store.resource_version
            if _wants_table(accept):
                return 200, table(kind, items, str(rv))
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": items}
        if method == "POST":
            obj = _parse_body(body)
            _check_body(obj, kind, ns)
            return 201, api.create(obj)
        if method == "DELETE":
            items = [api.delete(kind, i["metadata"].get("namespace"), i["metadata"]["name"])
                     for i in store.list(kind.api_version, kind.kind, ns, labels, fields)]
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(store.resource_version)}, "items": items}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
    if sub == "log":
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        return 200, api.pod_log(ns or "", name, query)
    if method == "GET":
        obj = store.get(kind.api_version, kind.kind, ns, name)
        if sub is None and _wants_table(accept):
            return 200, table(kind, [obj], obj["metadata"].get("resourceVersion"))
        return 200, scale_of(obj) if sub == "scale" else obj
    if method == "POST" and sub == "eviction":
        _parse_body(body)
        return 201, api.evict(ns or "", name)
    if method == "PUT":
        obj = _parse_body(body)
        if sub == "scale":
            with store.lock:
                current = store.get(kind.api_version, kind.kind, ns, name)
                return 200, api.set_replicas(current, obj, (obj.get("metadata") or {}).get("resourceVersion"))
        _check_body(obj, kind, ns)
        if (obj.get("metadata") or {}).get("name") != name:
            raise bad_request("the name of the object does not match the name on the URL")
        return 200, api.replace(obj, sub, (obj.get("metadata") or {}).get("resourceVersion"))
    if method == "PATCH":
        return api.patch(kind, ns, name, content_type, body, query.get("fieldManager"), sub)
    if method == "DELETE" and sub is None:
        deleted = api.delete(kind, ns, name)
        if kind.kind in ("Pod", "Service", "ServiceAccount"):  # the client expects the object back for these
            return 200, deleted
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": kind.plural, "uid": deleted["metadata"]["uid"],
                                 **({"group": kind.group} if kind.group else {})}}
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")


def _wants_table(accept: str) -> bool:
    return any("as=Table" in media.replace(" ", "").split(";") and "g=meta.k8s.io" in media.replace(" ", "").split(";")
               for media in accept.split(","))


def _check_body(obj: Any, kind: Kind, namespace: str | None) -> None:
    if not isinstance(obj, dict):
        raise bad_request("the request body must be an object")
    if obj.setdefault("apiVersion", kind.api_version) != kind.api_version or obj.setdefault("kind", kind.kind) != kind.kind:
        raise bad_request(f"the body is a {obj.get('apiVersion')} {obj.get('kind')}, not a {kind.api_version} {kind.kind}")
    meta = obj.setdefault("metadata", {})
    if kind.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace


def _watch_lines(store: Store, kind: Kind, namespace: str | None, labels: Any, fields: Any,
                 query: dict[str, str]) -> Iterator[bytes]:
    since = query.get("resourceVersion") or "0"
    try:
        since_rv = None if since == "0" else int(since)
        timeout = float(query.get("timeoutSeconds") or WATCH_TIMEOUT_DEFAULT)
    except ValueError:
        raise bad_request("resourceVersion and timeoutSeconds must be numbers") from None

    def match(obj: Obj) -> bool:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"]) == (kind.api_version, kind.kind) \
            and (namespace is None or meta.get("namespace") == namespace) \
            and labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

    def lines() -> Iterator[bytes]:
        try:
            for event, obj in store.watch(since_rv, match, timeout):
                yield json.dumps({"type": event, "object": obj}).encode() + b"\n"
        except Gone as error:
            status = ApiError(410, "Expired", str(error)).status()
            yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"

    return lines()


# --- HTTP ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        self.request.settimeout(HANDSHAKE_SECONDS)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            # A plain-HTTP client, or one that does not trust the CA: there is no request to answer.
            log.info("TLS handshake with %s failed: %s", self.client_address[0], error)
            return
        self.request.settimeout(None)  # watches and idle keep-alive connections wait as long as they like
        super().handle()

    def _send(self, code: int, document: Obj | bytes) -> None:
        text = isinstance(document, bytes)
        payload = document if text else json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, lines: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            refused = self.server.refusal(self.headers.get("Authorization") or "")
            if refused:
                # Like EKS: the client is told only "Unauthorized"; the reason goes to the log.
                log.info("refused %s %s: %s", self.command, url.path, refused)
                raise ApiError(401, "Unauthorized", "Unauthorized")
            code, result = handle(self.server.api, self.command, url.path, query,
                                  self.headers.get("Content-Type") or "application/json", body,
                                  self.headers.get("Accept") or "application/json")
        except ApiError as error:
            self._send(error.code, error.status())
            return
        except Exception as error:  # a bug in the emulator must still answer like an API server
            log.exception("kube emulator failed on %s %s", self.command, self.path)
            self._send(500, ApiError(500, "InternalError", f"internal error: {error!r}").status())
            return
        if isinstance(result, (dict, bytes)):
            self._send(code, result)
        else:
            self._stream(result)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class ApiHttpServer(ThreadingHTTPServer):
    """The emulator's HTTPS front: 127.0.0.1 on a free port, TLS with `tls` (see tls.py), an EKS
    bearer token (see eks_auth) required on every path."""

    daemon_threads = True

    def __init__(self, api: Api, access_key_id: str, tls: ssl.SSLContext,
                 token_seconds: float = EKS_TOKEN_LIFETIME_SECONDS, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.api, self._access_key_id, self._token_seconds = api, access_key_id, token_seconds
        self._tls = tls
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[ssl.SSLSocket, Any]:
        # The handshake happens on the connection's own thread (see _Handler.handle): one slow or
        # plain-HTTP client must not hold up the accept loop.
        sock, address = super().get_request()
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"https://{host}:{port}"

    def refusal(self, header: str) -> str | None:
        """Why a request with this Authorization header is refused (None: it is not)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return "no bearer token"
        return token_problem(token.strip(), access_key_id=self._access_key_id, lifetime=self._token_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="kube-emulator-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.api.store.close()  # ends open watches so their threads return
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)
