"""The resource types the emulator serves, and what an object is: a plain JSON dict, keyed in the
store by (apiVersion, kind, namespace, name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radstream.sandbox.kube.errors import ApiError

Obj = dict[str, Any]
Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Kind:
    """One resource type the emulator serves."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    read_only: bool = False  # served by an aggregated API (metrics-server): get, list and watch only

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def qualified(self) -> str:
        """How API error messages name the resource: `pods`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS: tuple[Kind, ...] = (
    Kind("v1", "Namespace", "namespaces", False, ("status",), ("ns",)),
    Kind("v1", "Node", "nodes", False, ("status",), ("no",)),
    Kind("v1", "Pod", "pods", True, ("status", "eviction", "log"), ("po",)),
    Kind("v1", "Service", "services", True, ("status",), ("svc",)),
    Kind("v1", "ConfigMap", "configmaps", True, (), ("cm",)),
    Kind("v1", "Secret", "secrets", True),
    Kind("v1", "ServiceAccount", "serviceaccounts", True, (), ("sa",)),
    Kind("v1", "Event", "events", True, (), ("ev",)),
    Kind("apps/v1", "Deployment", "deployments", True, ("status", "scale"), ("deploy",)),
    Kind("apps/v1", "DaemonSet", "daemonsets", True, ("status",), ("ds",)),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("status",), ("hpa",)),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("status",), ("pdb",)),
    Kind("metrics.k8s.io/v1beta1", "PodMetrics", "pods", True, read_only=True),
)


_BY_KIND = {(k.api_version, k.kind): k for k in KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({api_version} {kind})") from None
