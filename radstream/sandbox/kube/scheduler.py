"""The scheduler: binds pending pods (system-critical first, then oldest) to the Ready, schedulable
node with the fewest pods that their selector, affinity, tolerations and requests fit, and says why
none fits in the words the real scheduler uses."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.kubelet_state import KubeletState
from radstream.sandbox.kube.selectors import Requirement, labels_match, selector_requirements
from radstream.sandbox.kube.status import TERMINAL_PHASES, condition, node_ready

_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity ("500m", "2", "1Gi", "512Mi") as a number of cores or bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)([A-Za-z]*)\s*", str(value))
    if not match or match.group(2) not in ("", *_SUFFIXES):
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES.get(match.group(2), 1)


def pod_requests(pod: Obj) -> Counter[str]:
    total: Counter[str] = Counter()
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for name, quantity in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            total[name] += parse_quantity(quantity)  # type: ignore[assignment]  # typeshed counts in int; cores and bytes are floats
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("operator", "Equal") == "Equal" and t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


class Scheduler(KubeletState):
    """Scheduling. Mixed into Kubelet, whose __init__ makes the state
    declared on KubeletState."""

    def _schedule(self) -> None:
        nodes = [n for n in self.store.list("v1", "Node")]
        pods = self.store.list("v1", "Pod")
        usage: dict[str, Counter[str]] = {n["metadata"]["name"]: Counter() for n in nodes}
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node in usage and pod["status"].get("phase") not in TERMINAL_PHASES:
                usage[node] += pod_requests(pod) + Counter(pods=1)
        pending = [p for p in pods if not p["spec"].get("nodeName") and p["status"].get("phase") == "Pending"]
        # System-critical pods (coredns) first, then oldest first: the order the real scheduler's queue uses.
        pending.sort(key=lambda p: ("critical" not in (p["spec"].get("priorityClassName") or ""),
                                    int(p["metadata"]["resourceVersion"])))
        for pod in pending:
            fits: list[Obj] = []
            reasons: Counter[str] = Counter()
            for node in nodes:
                reason = self._unfit(pod, node, usage[node["metadata"]["name"]])
                if reason:
                    reasons[reason] += 1
                else:
                    fits.append(node)
            if fits:
                node = min(fits, key=lambda n: (usage[n["metadata"]["name"]]["pods"], n["metadata"]["name"]))
                usage[node["metadata"]["name"]] += pod_requests(pod) + Counter(pods=1)
                self._bind(pod, node["metadata"]["name"])
            else:
                detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
                message = f"0/{len(nodes)} nodes are available: {detail or 'no nodes available to schedule pods'}."
                self._unschedulable(pod, message)

    @staticmethod
    def _unfit(pod: Obj, node: Obj, used: Counter[str]) -> str | None:
        """Why `pod` cannot go to `node` (the phrases the real scheduler uses), or None if it fits."""
        spec, labels = pod["spec"], node["metadata"].get("labels") or {}
        tolerations = spec.get("tolerations") or []
        if not node_ready(node):
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if node["spec"].get("unschedulable") and not tolerates(tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
            return "node(s) were unschedulable"
        selector: list[Requirement] = [(k, "In", (v,)) for k, v in (spec.get("nodeSelector") or {}).items()]
        terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                  .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
        if not labels_match(selector, labels) or (terms and not any(
                labels_match(selector_requirements({"matchExpressions": t.get("matchExpressions")}), labels) for t in terms)):
            return "node(s) didn't match Pod's node affinity/selector"
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        allocatable = node["status"].get("allocatable") or {}
        if used["pods"] + 1 > parse_quantity(allocatable.get("pods", 0)):
            return "Too many pods"
        for resource, amount in sorted(pod_requests(pod).items()):
            if used[resource] + amount > parse_quantity(allocatable.get(resource, 0)):
                return f"Insufficient {resource}"
        return None

    def _bind(self, pod: Obj, node: str) -> None:
        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            p["status"]["conditions"] = [condition(p["status"].get("conditions") or [], "PodScheduled", "True")]
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], bind)

    def _unschedulable(self, pod: Obj, message: str) -> None:
        previous = pod["status"].get("conditions") or []
        if any(c.get("type") == "PodScheduled" and c.get("message") == message for c in previous):
            return
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"],
                          lambda p: p["status"].update(conditions=[condition(previous, "PodScheduled", "False", "Unschedulable", message)]))
        self._event(pod, "FailedScheduling", message, "Warning", "default-scheduler")
