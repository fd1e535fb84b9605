"""Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for (Accept: …;as=Table).

Without one kubectl prints only NAME and AGE, so the kinds RadStream deploys get the columns the
real API server gives them; every other kind gets Name and Age. Rows carry the object's metadata
(PartialObjectMetadata), which kubectl needs for its NAMESPACE column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from radstream.sandbox.kube.kinds import Kind, Obj

Row = list[Any]


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """A Kubernetes-style short duration since `timestamp`: 45s, 3m12s, 25m, 4h10m, 7h, 2d5h, 30d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _pod(pod: Obj) -> Row:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    reason = status.get("phase") or "Pending"
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or reason
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    ready = sum(1 for c in containers if c.get("ready"))
    return [f"{ready}/{len(pod['spec'].get('containers') or [])}", reason,
            sum(c.get("restartCount", 0) for c in containers), status.get("podIP") or "<none>",
            pod["spec"].get("nodeName") or "<none>"]


def _node(node: Obj) -> Row:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    status = "Ready" if ready else "NotReady"
    if node["spec"].get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.rpartition("/")[2] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [status, ",".join(roles) or "<none>", info.get("kubeletVersion", "")]


def _deployment(deployment: Obj) -> Row:
    status = deployment.get("status") or {}
    return [f"{status.get('readyReplicas', 0)}/{deployment['spec'].get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0)]


def _service(service: Obj) -> Row:
    spec = service["spec"]
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("hostname") or i.get("ip") or "" for i in ingress)
    if not external:
        external = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    ports = ",".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or [])
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external, ports or "<none>"]


def _autoscaler(hpa: Obj) -> Row:
    spec, status = hpa["spec"], hpa.get("status") or {}
    target = spec.get("scaleTargetRef") or {}
    # Metrics are not emulated: every target reads <unknown>, as on a cluster without metrics-server.
    targets = ", ".join(f"{(m.get('resource') or {}).get('name', m.get('type', '').lower())}: <unknown>"
                        for m in spec.get("metrics") or []) or "<none>"
    return [f"{target.get('kind')}/{target.get('name')}", targets, spec.get("minReplicas", 1), spec.get("maxReplicas"),
            status.get("currentReplicas", 0)]


def _budget(pdb: Obj) -> Row:
    spec = pdb["spec"]
    return [spec.get("minAvailable", "N/A"), spec.get("maxUnavailable", "N/A"),
            (pdb.get("status") or {}).get("disruptionsAllowed", 0)]


def _column(name: str, type_: str = "string", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": "name" if name == "Name" else "", "description": "",
            "priority": priority}


# kind -> (columns between Name and Age, columns after Age, the row's cells in that order)
_PRINTERS: dict[str, tuple[list[Obj], list[Obj], Callable[[Obj], Row]]] = {
    "Pod": ([_column("Ready"), _column("Status"), _column("Restarts", "integer")],
            [_column("IP", priority=1), _column("Node", priority=1)], _pod),
    "Node": ([_column("Status"), _column("Roles")], [_column("Version")], _node),
    "Deployment": ([_column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer")], [],
                   _deployment),
    "Service": ([_column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)")], [], _service),
    "HorizontalPodAutoscaler": ([_column("Reference"), _column("Targets"), _column("MinPods", "integer"),
                                 _column("MaxPods", "integer"), _column("Replicas", "integer")], [], _autoscaler),
    "PodDisruptionBudget": ([_column("Min Available"), _column("Max Unavailable"),
                             _column("Allowed Disruptions", "integer")], [], _budget),
}


def table(kind: Kind, items: list[Obj], resource_version: str | None) -> Obj:
    before, after, cells = _PRINTERS.get(kind.kind, ([], [], lambda obj: []))
    split = len(before)
    rows = []
    for obj in items:
        values = cells(obj)
        rows.append({"cells": [obj["metadata"]["name"], *values[:split], age(obj["metadata"].get("creationTimestamp")),
                               *values[split:]],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": obj["metadata"]}})
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": [_column("Name"), *before, _column("Age"), *after], "rows": rows}
