"""The HorizontalPodAutoscaler controller: every sync period, each HPA reads its Deployment's pods'
CPU from the resource-metrics API (PodMetrics, see resource_metrics.py), and sets the Deployment's
replicas by the Kubernetes algorithm (autoscaling.py), reporting status and conditions as the real
controller does: ScalingActive False with FailedGetResourceMetric while the metrics API is missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from radstream.sandbox.kube.autoscaling import (
    DEFAULT_SCALE_DOWN_WINDOW_S,
    DEFAULT_SCALE_UP_WINDOW_S,
    PodSample,
    limit_and_clamp,
    recommend,
    stabilize,
)
from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.kubelet_state import KubeletState
from radstream.sandbox.kube.metadata import now_iso
from radstream.sandbox.kube.resource_metrics import METRICS_API, cpu_millicores, metrics_api_state
from radstream.sandbox.kube.scheduler import parse_quantity
from radstream.sandbox.kube.status import condition, pod_ready

DEFAULT_CPU_TARGET = 80  # autoscaling/v2's default when spec.metrics is empty
_NO_METRICS = ("failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics "
               "from resource metrics API: the server is currently unable to handle the request (get pods.metrics.k8s.io)")


def cpu_target(spec: Obj) -> int | None:
    """The averageUtilization of the HPA's cpu Resource metric (None: it scales on something else)."""
    metrics = spec.get("metrics") or []
    if not metrics:
        return DEFAULT_CPU_TARGET
    for metric in metrics:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu" and (resource.get("target") or {}).get("type") == "Utilization":
            return int(resource["target"]["averageUtilization"])
    return None


def windows(spec: Obj) -> tuple[float, float]:
    behavior = spec.get("behavior") or {}

    def window(direction: str, default: float) -> float:
        value = (behavior.get(direction) or {}).get("stabilizationWindowSeconds")
        return default if value is None else float(value)

    return window("scaleUp", DEFAULT_SCALE_UP_WINDOW_S), window("scaleDown", DEFAULT_SCALE_DOWN_WINDOW_S)


def _cpu_request(pod: Obj) -> float:
    total = 0.0
    for container in pod["spec"].get("containers") or []:
        requested = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        total += parse_quantity(requested) * 1000 if requested else 0.0
    return total


# Store.mutate changes that bind their values when made (see controllers.py).
def _set_status(status: Obj) -> Callable[[Obj], None]:
    return lambda obj: obj.update(status=status)


def _scale_to(replicas: int) -> Callable[[Obj], None]:
    return lambda obj: obj["spec"].update(replicas=replicas)


class HpaController(KubeletState):
    """Mixed into Kubelet; `_owned_pods` comes from Controllers."""

    hpa_sync_period: float
    _hpa_synced: dict[str, float]
    _hpa_history: dict[str, list[tuple[float, int]]]
    _owned_pods: Callable[[Obj], list[Obj]]

    def _autoscalers(self) -> None:
        now = time.monotonic()
        for hpa in self.store.list("autoscaling/v2", "HorizontalPodAutoscaler"):
            uid = hpa["metadata"]["uid"]
            if now - self._hpa_synced.get(uid, float("-inf")) < self.hpa_sync_period:
                continue
            self._hpa_synced[uid] = now
            self._sync(hpa, now)
        live = {h["metadata"]["uid"] for h in self.store.list("autoscaling/v2", "HorizontalPodAutoscaler")}
        for gone in set(self._hpa_synced) - live:
            self._hpa_synced.pop(gone, None)
            self._hpa_history.pop(gone, None)

    def _sync(self, hpa: Obj, now: float) -> None:
        spec, ns, name = hpa["spec"], hpa["metadata"]["namespace"], hpa["metadata"]["name"]
        previous = hpa.get("status") or {}
        conditions = previous.get("conditions") or []
        target_ref = spec.get("scaleTargetRef") or {}
        deployment = (self.store.find("apps/v1", "Deployment", ns, target_ref.get("name", ""))
                      if target_ref.get("kind") == "Deployment" else None)
        if deployment is None:
            unable = {"currentReplicas": 0, "desiredReplicas": 0,
                      "conditions": [condition(conditions, "AbleToScale", "False", "FailedGetScale",
                                               f"the HPA controller was unable to get the target's current scale: "
                                               f"deployments.apps \"{target_ref.get('name')}\" not found")]}
            self.store.mutate("autoscaling/v2", "HorizontalPodAutoscaler", ns, name, _set_status(unable))
            return
        minimum, maximum = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        current = int(deployment["spec"].get("replicas", 1))
        pods = [p for p in self._owned_pods(deployment) if not p["metadata"].get("deletionTimestamp")]
        target = cpu_target(spec)
        active: Obj
        utilization: int | None = None
        if not minimum <= current <= maximum:
            desired, active = min(max(current, minimum), maximum), condition(conditions, "ScalingActive", "True", "ValidMetricFound")
        elif target is None or metrics_api_state(self.store) != "available":
            desired = current
            active = condition(conditions, "ScalingActive", "False", "FailedGetResourceMetric", _NO_METRICS)
        else:
            samples = [self._sample(p) for p in pods]
            recommendation = recommend(current, samples, target)
            utilization = recommendation.utilization
            history = self._hpa_history.setdefault(hpa["metadata"]["uid"], [])
            up_window, down_window = windows(spec)
            stabilized = stabilize(history, now, recommendation.replicas, current, up_window, down_window)
            history.append((now, recommendation.replicas))
            history[:] = [(t, r) for t, r in history if now - t <= max(up_window, down_window)]
            desired = limit_and_clamp(current, stabilized, minimum, maximum)
            active = (condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                                "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)")
                      if utilization is not None else
                      condition(conditions, "ScalingActive", "False", "FailedGetResourceMetric",
                                f"failed to get cpu utilization: {recommendation.problem}"))
        limited = (condition(conditions, "ScalingLimited", "True", "TooManyReplicas") if desired >= maximum and current >= maximum
                   else condition(conditions, "ScalingLimited", "True", "TooFewReplicas") if desired <= minimum and current <= minimum
                   else condition(conditions, "ScalingLimited", "False", "DesiredWithinRange"))
        status: dict[str, Any] = {
            "currentReplicas": (deployment.get("status") or {}).get("replicas", 0), "desiredReplicas": desired,
            "conditions": [condition(conditions, "AbleToScale", "True", "ReadyForNewScale"), active, limited],
        }
        if utilization is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": utilization}}}]
        status["lastScaleTime"] = now_iso() if desired != current else previous.get("lastScaleTime")
        if status["lastScaleTime"] is None:
            del status["lastScaleTime"]
        self.store.mutate("autoscaling/v2", "HorizontalPodAutoscaler", ns, name, _set_status(status))
        if desired != current:
            self.store.mutate("apps/v1", "Deployment", ns, deployment["metadata"]["name"], _scale_to(desired))

    def _sample(self, pod: Obj) -> PodSample:
        metrics = self.store.find(METRICS_API, "PodMetrics", pod["metadata"]["namespace"], pod["metadata"]["name"])
        return PodSample(ready=pod_ready(pod), usage_mcpu=cpu_millicores(metrics) if metrics else None,
                         request_mcpu=_cpu_request(pod))
