"""Reading and writing Kubernetes objects as plain dicts, through the official client's ApiClient.

Writes use server-side apply (field manager "radstream", forced: RadStream owns what it applies).
An object whose live state already holds every applied field is not written again, so a converged
cluster sees no write at all. Deletes are quiet when the object is already gone. The wait helpers
take the context's `wait(description, predicate, timeout, interval)` so progress is shown."""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radstream.context import Context

FIELD_MANAGER = "radstream"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
RETRY_ATTEMPTS = 6  # 0.2 + 0.4 + … + 3.2 s of backoff at most
RETRY_BASE_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 5.0

Obj = dict[str, Any]
Wait = Callable[..., Any]
_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def kube_api(ctx: Context) -> Any:
    """The context's counting ApiClient, shared by the steps of a run (it renews its own EKS token)."""
    from radstream.kube.client import api_client

    if ctx not in _clients:
        _clients[ctx] = api_client(ctx)
    return _clients[ctx]


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    namespaced: bool


# The kinds RadStream touches.
RESOURCES: dict[str, Resource] = {
    "Namespace": Resource("v1", "namespaces", False),
    "Node": Resource("v1", "nodes", False),
    "Pod": Resource("v1", "pods", True),
    "Event": Resource("v1", "events", True),
    "Service": Resource("v1", "services", True),
    "Deployment": Resource("apps/v1", "deployments", True),
    "DaemonSet": Resource("apps/v1", "daemonsets", True),
    "HorizontalPodAutoscaler": Resource("autoscaling/v2", "horizontalpodautoscalers", True),
    "PodDisruptionBudget": Resource("policy/v1", "poddisruptionbudgets", True),
}


def path(kind: str, name: str | None = None, namespace: str | None = None, subresource: str | None = None) -> str:
    resource = RESOURCES[kind]
    base = "/api/v1" if resource.api_version == "v1" else f"/apis/{resource.api_version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{resource.plural}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base


def _retryable(method: str, status: int) -> bool:
    # 5xx: the API server (or what is in front of it) failed. 409 on a read, apply or delete is a
    # write conflict that a second try resolves; on POST it means "already exists", which never will.
    return status in TRANSIENT_STATUSES or (status == 409 and method != "POST")


def request(api: Any, method: str, url_path: str, *, body: Any = None, query: dict[str, str] | None = None,
            content_type: str = "application/json") -> Obj | None:
    """One call; the decoded JSON answer. Transient failures (5xx, conflicts) are retried with
    exponential backoff, a bounded number of times; any other non-2xx raises kubernetes'
    ApiException (status, body)."""
    from kubernetes.client.exceptions import ApiException

    method, url, headers, body, _ = api.param_serialize(
        method=method, resource_path=url_path, query_params=list((query or {}).items()),
        header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body,
        auth_settings=["BearerToken"])
    for attempt in range(RETRY_ATTEMPTS):
        response = api.call_api(method, url, header_params=headers, body=body)
        response.read()
        text = response.data.decode() if response.data else ""
        if 200 <= response.status <= 299:
            return json.loads(text) if text else None
        if attempt + 1 == RETRY_ATTEMPTS or not _retryable(method, response.status):
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        counter = getattr(api, "counter", None)
        if counter is not None:
            counter.record_retry(f"k8s:{method}")
        time.sleep(min(RETRY_MAX_DELAY_S, RETRY_BASE_DELAY_S * 2**attempt))
    raise AssertionError("unreachable")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ApiException (None for anything else)."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def get(api: Any, kind: str, name: str, namespace: str | None = None) -> Obj | None:
    try:
        return request(api, "GET", path(kind, name, namespace))
    except Exception as exc:
        if status_of(exc) == 404:
            return None
        raise


def list_objects(api: Any, kind: str, namespace: str | None = None, *, labels: dict[str, str] | None = None,
                 field_selector: str | None = None) -> list[Obj]:
    query = {}
    if labels:
        query["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if field_selector:
        query["fieldSelector"] = field_selector
    return (request(api, "GET", path(kind, namespace=namespace), query=query) or {}).get("items") or []


def contains(live: Any, desired: Any) -> bool:
    """Does `live` hold every value `desired` sets? Extra fields in live (server defaults, status)
    are ignored; lists must match item by item."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    return live == desired


def _identity(manifest: Obj) -> tuple[str, str, str | None]:
    meta = manifest["metadata"]
    return manifest["kind"], meta["name"], meta.get("namespace")


def is_applied(api: Any, manifest: Obj) -> bool:
    live = get(api, *_identity(manifest))
    return live is not None and contains(live, manifest)


def apply(api: Any, manifest: Obj) -> tuple[Obj, bool]:
    """Server-side apply `manifest` unless the live object already matches; (object, written)."""
    kind, name, namespace = _identity(manifest)
    live = get(api, kind, name, namespace)
    if live is not None and contains(live, manifest):
        return live, False
    applied = request(api, "PATCH", path(kind, name, namespace), body=manifest,
                      query={"fieldManager": FIELD_MANAGER, "force": "true"}, content_type=APPLY_CONTENT_TYPE)
    return applied or {}, True


def delete(api: Any, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete (children in the background); False when it was already gone."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    try:
        request(api, "DELETE", path(kind, name, namespace), body=body)
    except Exception as exc:
        if status_of(exc) == 404:
            return False
        raise
    return True


def wait_deleted(wait: Wait, api: Any, kind: str, name: str, namespace: str | None = None,
                 timeout: float = 300.0) -> None:
    where = f"{namespace}/{name}" if namespace else name
    wait(f"{kind} {where} gone", lambda: get(api, kind, name, namespace) is None, timeout=timeout, interval=1.0)


def rollout_state(deployment: Obj) -> tuple[bool, str]:
    """(complete, what is missing) — complete when the controller has seen the latest spec and every
    wanted replica runs the new template and is ready."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    generation = deployment["metadata"].get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False, "the controller has not seen the latest spec yet"
    updated, ready, total = (status.get(k, 0) for k in ("updatedReplicas", "readyReplicas", "replicas"))
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas still terminating"
    if ready < wanted:
        return False, f"{ready} of {wanted} replicas ready"
    return True, f"{ready} of {wanted} replicas ready"


# Waiting reasons of a container whose image does not reach the node.
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def pod_problems(api: Any, namespace: str, labels: dict[str, str]) -> list[str]:
    """Why the pods behind a rollout are not ready: image pull failures first (with the kubelet's
    reason, e.g. "no space left on device"), then scheduling failures and other waiting containers."""
    pulls, problems = [], []
    for pod in list_objects(api, "Pod", namespace, labels=labels):
        name, status = pod["metadata"]["name"], pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("message"):
                problems.append(f"{name}: {condition['message']}")
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in PULL_FAILURES:
                pulls.append(f"{name}: {reason} {container.get('image', '')}: {waiting.get('message', '')}".rstrip(": "))
            elif reason not in (None, "ContainerCreating"):
                problems.append(f"{name}: {reason} {waiting.get('message', '')}".rstrip())
    return pulls + problems


def pod_activity(api: Any, namespace: str, labels: dict[str, str]) -> list[str]:
    """What each pod behind a rollout is doing, one line per pod: its phase, its waiting containers'
    reasons (ContainerCreating, ErrImagePull, ImagePullBackOff…) and its latest event (Pulling
    image…, Pulled…, Failed…): an image of gigabytes takes minutes to pull, and this says so."""
    def recency(event: Obj) -> tuple[str, int]:
        # Timestamps have one-second resolution: events of the same second are ordered by the
        # resourceVersion the API server gave them (numeric on every server we talk to).
        version = (event.get("metadata") or {}).get("resourceVersion") or ""
        return (event.get("lastTimestamp") or event.get("eventTime") or "", int(version) if version.isdigit() else 0)

    events: dict[str, Obj] = {}
    for event in list_objects(api, "Event", namespace):
        involved = event.get("involvedObject") or {}
        latest = events.get(involved.get("name", ""))
        if involved.get("kind") == "Pod" and (latest is None or recency(event) >= recency(latest)):
            events[involved["name"]] = event
    lines = []
    for pod in sorted(list_objects(api, "Pod", namespace, labels=labels), key=lambda p: p["metadata"]["name"]):
        name, status = pod["metadata"]["name"], pod.get("status") or {}
        waiting = sorted({w["reason"] for c in status.get("containerStatuses") or []
                          if (w := (c.get("state") or {}).get("waiting") or {}).get("reason")})
        line = f"{name}: {', '.join(waiting) or status.get('phase', 'Pending')}"
        if name in events:
            line += f" ({events[name].get('reason')}: {events[name].get('message', '')})"
        lines.append(line)
    return lines


def wait_rollout(wait: Wait, api: Any, namespace: str, name: str, timeout: float,
                 log: Callable[[str], None] | None = None) -> Obj:
    """Wait for the Deployment's rollout, logging what its pods are doing whenever that changes;
    on timeout the error says what they are stuck on, an image that cannot be pulled first."""
    from radstream.errors import WaitTimeout

    shown: list[str] = []

    def done() -> Obj | None:
        deployment = get(api, "Deployment", name, namespace)
        if deployment and rollout_state(deployment)[0]:
            return deployment
        selector = ((deployment or {}).get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        activity = pod_activity(api, namespace, selector) if log and selector else []
        if log is not None and activity and activity != shown:
            shown[:] = activity
            for line in activity:
                log(f"  pod {line}")
        return None

    try:
        return wait(f"Deployment {namespace}/{name} rolled out", done, timeout=timeout, interval=1.0)
    except WaitTimeout as exc:
        deployment = get(api, "Deployment", name, namespace)
        state = rollout_state(deployment)[1] if deployment else "the Deployment is gone"
        selector = ((deployment or {}).get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        problems = pod_problems(api, namespace, selector) if selector else []
        detail = "; ".join([state, *problems[:5]])
        raise WaitTimeout(f"{exc.args[0]} ({detail})",
                          hint="fix what the pods report, then run the phase again to keep waiting") from None
