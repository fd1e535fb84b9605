"""metrics-server: the resource-metrics API (metrics.k8s.io/v1beta1 PodMetrics), from measurements.

A cluster has this API only once metrics-server runs in it (on EKS, the `metrics-server` add-on):
without its Deployment the group is unknown (404), with it but no Ready pod the API server answers
503, as an unavailable APIService does. Every `metric_resolution` seconds the `usage_hook` is asked
for the running pods' real use, {pod uid: (millicores, bytes)}; pods it has no measurement for get
no PodMetrics, as a pod metrics-server could not scrape."""

from __future__ import annotations

import time
from collections.abc import Callable

from radstream.sandbox.kube.errors import ApiError
from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.kubelet_state import KubeletState
from radstream.sandbox.kube.metadata import now_iso
from radstream.sandbox.kube.store import Store

METRICS_API = "metrics.k8s.io/v1beta1"
METRICS_SERVER = ("kube-system", "metrics-server")
METRIC_RESOLUTION_S = 15.0  # metrics-server's --metric-resolution

UsageHook = Callable[[list[Obj]], dict[str, tuple[float, float]]]


def metrics_api_state(store: Store) -> str:
    """"absent", "unavailable" or "available"."""
    server = store.find("apps/v1", "Deployment", *METRICS_SERVER)
    if server is None:
        return "absent"
    return "available" if (server.get("status") or {}).get("readyReplicas") else "unavailable"


def require_metrics_api(store: Store) -> None:
    state = metrics_api_state(store)
    if state == "absent":
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if state == "unavailable":
        raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")


def _pod_metrics(pod: Obj, millicores: float, memory_bytes: float, window_s: float) -> Obj:
    meta = pod["metadata"]
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    share = len(containers) or 1
    return {"apiVersion": METRICS_API, "kind": "PodMetrics",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {})},
            "timestamp": now_iso(), "window": f"{window_s:g}s",
            "containers": [{"name": name, "usage": {"cpu": f"{int(millicores * 1e6 / share)}n",
                                                    "memory": f"{int(memory_bytes / 1024 / share)}Ki"}}
                           for name in containers]}


def cpu_millicores(metrics: Obj) -> float:
    from radstream.sandbox.kube.scheduler import parse_quantity

    return sum(parse_quantity(c["usage"]["cpu"]) for c in metrics.get("containers") or []) * 1000


def _refresh(sample: Obj) -> Callable[[Obj], None]:
    return lambda obj: obj.update(timestamp=sample["timestamp"], window=sample["window"], containers=sample["containers"])


class ResourceMetrics(KubeletState):
    """Mixed into Kubelet: keeps one PodMetrics per measured running pod while metrics-server runs."""

    usage_hook: UsageHook | None
    metric_resolution: float
    _metrics_scraped: float

    def _resource_metrics(self) -> None:
        now = time.monotonic()
        if now - self._metrics_scraped < self.metric_resolution:
            return
        self._metrics_scraped = now
        available = metrics_api_state(self.store) == "available"
        running = [p for p in self.store.list("v1", "Pod") if (p.get("status") or {}).get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp")]
        measured = (self._call_usage(running) if available and self.usage_hook else {})
        current = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in running if p["metadata"]["uid"] in measured}
        for old in self.store.list(METRICS_API, "PodMetrics"):
            if (old["metadata"]["namespace"], old["metadata"]["name"]) not in current:
                self.store.delete(METRICS_API, "PodMetrics", old["metadata"]["namespace"], old["metadata"]["name"])
        for (namespace, name), pod in current.items():
            millicores, memory = measured[pod["metadata"]["uid"]]
            sample = _pod_metrics(pod, millicores, memory, self.metric_resolution)
            if self.store.find(METRICS_API, "PodMetrics", namespace, name) is None:
                self.store.create(sample)
            else:
                self.store.mutate(METRICS_API, "PodMetrics", namespace, name, _refresh(sample))

    def _call_usage(self, pods: list[Obj]) -> dict[str, tuple[float, float]]:
        try:
            return self.usage_hook(pods) if self.usage_hook else {}
        except Exception:  # a failed measurement is a missed scrape, not a dead kubelet
            import logging

            logging.getLogger(__name__).exception("measuring pod usage failed")
            return {}
