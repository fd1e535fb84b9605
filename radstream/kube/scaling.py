"""How the Triton Deployment is scaled right now: its replicas and the HPA's view (desired, bounds,
measured and target CPU utilisation, whether it can read metrics); and holding the HPA at a bound
for a while (`radstream ab autoscaling`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from radstream.kube.apply import get, kube_api, path, request
from radstream.kube.manifests import DEPLOYMENT


def serving_scale(api: Any, namespace: str, name: str) -> dict[str, Any]:
    deployment = get(api, "Deployment", name, namespace) or {}
    hpa = get(api, "HorizontalPodAutoscaler", name, namespace) or {}
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    current: dict[str, Any] = next((m["resource"]["current"] for m in status.get("currentMetrics") or []
                    if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"), {})
    target: dict[str, Any] = next((m["resource"]["target"] for m in spec.get("metrics") or []
                   if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"), {})
    active: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "ScalingActive"), {})
    return {
        "replicas": (deployment.get("spec") or {}).get("replicas"),
        "ready": (deployment.get("status") or {}).get("readyReplicas") or 0,
        "desired": status.get("desiredReplicas"),
        "min": spec.get("minReplicas"), "max": spec.get("maxReplicas"),
        "cpu_utilization": current.get("averageUtilization"),
        "target_cpu_utilization": target.get("averageUtilization"),
        "metrics": active.get("reason"),  # ValidMetricFound, or why the HPA cannot scale
    }


def triton_scale(ctx: Any) -> dict[str, Any]:
    """serving_scale of the deployment's Triton."""
    return serving_scale(kube_api(ctx), ctx.config.triton.namespace, DEPLOYMENT)


def _set_max_replicas(api: Any, namespace: str, name: str, maximum: int) -> None:
    request(api, "PATCH", path("HorizontalPodAutoscaler", name, namespace), body={"spec": {"maxReplicas": maximum}},
            content_type="application/merge-patch+json")


@contextmanager
def hold_autoscaler(ctx: Any, maximum: int) -> Iterator[None]:
    """The Triton HPA's maxReplicas lowered to `maximum` (the HPA scales down to it at once, without
    its stabilisation window), and put back afterwards."""
    api, namespace = kube_api(ctx), ctx.config.triton.namespace
    before = serving_scale(api, namespace, DEPLOYMENT)["max"]
    _set_max_replicas(api, namespace, DEPLOYMENT, maximum)
    try:
        yield
    finally:
        _set_max_replicas(api, namespace, DEPLOYMENT, before)


def wait_replicas(ctx: Any, replicas: int, timeout: float = 300.0) -> None:
    """Until the Triton Deployment runs exactly `replicas` ready replicas."""
    api, namespace = kube_api(ctx), ctx.config.triton.namespace

    def settled() -> bool:
        scale = serving_scale(api, namespace, DEPLOYMENT)
        return scale["replicas"] == replicas and scale["ready"] == replicas

    ctx.wait(f"Triton at {replicas} ready replica(s)", settled, timeout, interval=1.0, max_interval=10.0)
