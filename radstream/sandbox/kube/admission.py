"""Admission: what the API server validates and defaults on each kind before it stores an object
(pod spec defaults and QoS class, Deployment strategy, Service IPs and node ports, required fields,
selectors that match their template)."""

from __future__ import annotations

import itertools
from typing import Any

from radstream.sandbox.kube.errors import invalid
from radstream.sandbox.kube.kinds import Kind, Obj
from radstream.sandbox.kube.metadata import label_problems
from radstream.sandbox.kube.selectors import labels_match, selector_requirements


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


class Admission:
    """Defaults and validation by kind, applied to every create and update; it allocates cluster IPs
    and node ports."""

    def __init__(self) -> None:
        self._cluster_ips = itertools.count(10)
        self._node_ports = itertools.count(30080)

    def admit(self, kind: Kind, obj: Obj, current: Obj | None) -> None:
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
