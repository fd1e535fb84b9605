"""What the kubelet's mixins (nodes.py, scheduler.py, controllers.py) share with it: the state
`Kubelet.__init__` makes, declared here so each mixin is checked against it, and the helpers all of
them call. Nothing here imports kubelet.py, so the mixins can build on it without a cycle."""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.metadata import now_iso

if TYPE_CHECKING:
    from radstream.sandbox.kube.api import Api
    from radstream.sandbox.kube.nodes import Nodegroup
    from radstream.sandbox.kube.store import Store

log = logging.getLogger(__name__)

ReadinessHook = Callable[[Obj], bool]
PodHook = Callable[[Obj], None]
LoadBalancerHook = Callable[[Obj], "str | Obj | None"]
LogHook = Callable[[Obj, str], "bytes | None"]
ImagePullHook = Callable[[Obj, str], "str | None"]
ReleaseHook = Callable[[Obj], bool]


class KubeletState:
    """Declarations only; Kubelet.__init__ sets every one of them."""

    api: Api
    store: Store
    region: str
    pod_stop_hook: PodHook | None
    load_balancer_hook: LoadBalancerHook
    load_balancer_release_hook: ReleaseHook
    node_ready_delay: float
    load_balancer_delay: float
    probe_period: float
    _nodegroups: dict[str, Nodegroup]
    _timers: dict[tuple[str, str], float]  # (what, uid) -> when first noticed
    _running: dict[str, Obj]  # uid -> last seen running pod, for pod_stop_hook
    _addresses: Iterator[int]

    def _since(self, what: str, uid: str) -> float:
        return time.monotonic() - self._timers.setdefault((what, uid), time.monotonic())

    def _probe_due(self, uid: str) -> bool:
        """Readiness is probed every `probe_period`, not on every pass (passes follow every write)."""
        now = time.monotonic()
        if now - self._timers.get(("probe", uid), 0.0) < self.probe_period:
            return False
        self._timers[("probe", uid)] = now
        return True

    def _event(self, pod: Obj, reason: str, message: str, type_: str = "Normal", component: str = "kubelet") -> None:
        stamp = now_iso()
        self.api.create({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod['metadata']['name']}.{secrets.token_hex(8)}", "namespace": pod["metadata"]["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                               "namespace": pod["metadata"]["namespace"], "uid": pod["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
        })

    @staticmethod
    def _call(hook: Callable[[Obj], Any] | None, obj: Obj) -> Any:
        if hook is None:
            return None
        try:
            return hook(copy.deepcopy(obj))
        except Exception:
            log.exception("kube emulator hook %r failed on %s", hook, obj["metadata"].get("name"))
            return None
