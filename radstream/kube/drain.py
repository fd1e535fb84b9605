"""Cordon and drain nodes the way `kubectl drain --ignore-daemonsets --delete-emptydir-data` does:
evict every pod except DaemonSet and mirror pods through the eviction subresource, so
PodDisruptionBudgets are honoured. A refused eviction (429) is retried until a bounded timeout;
then the error names each pod still there and the budget that protects it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radstream.errors import RadstreamError, WaitTimeout
from radstream.kube.apply import Obj, get, list_objects, path, request, status_of

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_BUDGET_NAME = re.compile(r"disruption budget (\S+)")


class DrainBlocked(RadstreamError):
    """Pods could not be evicted within the timeout."""


def poll(description: str, predicate: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """A plain wait with the context's signature, for callers without a context."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for: {description}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def cordon(api: Any, node: str) -> bool:
    """Mark the node unschedulable; False when it already was (nothing written)."""
    live = get(api, "Node", node)
    if live is None or (live.get("spec") or {}).get("unschedulable"):
        return False
    request(api, "PATCH", path("Node", node), body={"spec": {"unschedulable": True}},
            content_type="application/merge-patch+json")
    return True


def _key(pod: Obj) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def must_move(pod: Obj) -> bool:
    """Pods a drain evicts: not DaemonSet pods (their controller ignores cordons), not mirror pods
    (the kubelet owns them), not finished ones."""
    meta = pod["metadata"]
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
        return False
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def pods_to_move(api: Any, node: str) -> list[Obj]:
    return [p for p in list_objects(api, "Pod", field_selector=f"spec.nodeName={node}") if must_move(p)]


def evict(api: Any, pod: Obj) -> str | None:
    """Ask for the pod's eviction. None when granted (or the pod is gone); else why it was refused."""
    meta = pod["metadata"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    try:
        request(api, "POST", path("Pod", meta["name"], meta["namespace"], "eviction"), body=body)
    except Exception as exc:
        code = status_of(exc)
        if code == 404:
            return None
        if code == 429:
            return _refusal(getattr(exc, "body", None) or "")
        raise
    return None


def _refusal(body: str) -> str:
    """The budget named in a 429 Status (its causes carry "The disruption budget X needs ...")."""
    try:
        status = json.loads(body)
    except ValueError:
        return "eviction refused (429)"
    messages = [c.get("message", "") for c in (status.get("details") or {}).get("causes") or []]
    for message in messages:
        found = _BUDGET_NAME.search(message)
        if found:
            return f"PodDisruptionBudget {found.group(1)}: {message}"
    return status.get("message") or "eviction refused (429)"


@dataclass
class DrainReport:
    nodes: list[str]
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # pod -> why its eviction is refused
    remaining: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"{pod}: {self.blocked.get(pod, 'still terminating')}" for pod in self.remaining]
        return "; ".join(lines)


def drain(api: Any, nodes: list[str], timeout: float, *, wait: Callable[..., Any] = poll,
          interval: float = 2.0, log: Callable[[str], None] = lambda _m: None) -> DrainReport:
    """Cordon `nodes`, then evict their pods until none is left or `timeout` passes.

    Raises DrainBlocked naming the pods still there and the PodDisruptionBudgets refusing them."""
    report = DrainReport(list(nodes))
    for node in nodes:
        if cordon(api, node):
            log(f"cordoned {node}")

    def one_pass() -> bool:
        remaining = []
        for node in nodes:
            for pod in pods_to_move(api, node):
                key = _key(pod)
                remaining.append(key)
                if pod["metadata"].get("deletionTimestamp"):
                    continue  # evicted, shutting down
                refusal = evict(api, pod)
                if refusal is None:
                    report.evicted.append(key)
                    report.blocked.pop(key, None)
                    log(f"evicted {key}")
                elif report.blocked.get(key) != refusal:
                    report.blocked[key] = refusal
                    log(f"eviction of {key} refused for now: {refusal}")
        report.remaining = remaining
        return not remaining

    try:
        wait(f"drain {', '.join(nodes)}", one_pass, timeout=timeout, interval=interval)
    except WaitTimeout:
        raise DrainBlocked(
            f"drain of {', '.join(nodes)} did not finish within {timeout:.0f}s: {report.describe()}",
            hint="relax the PodDisruptionBudget(s) named above or add capacity so their pods can move, "
                 "then run the phase again (nodegroup.drain_timeout_seconds sets the wait)",
        ) from None
    report.remaining = []
    return report
