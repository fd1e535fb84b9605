"""What objects' status says: pod and node readiness, the phases a pod never leaves, and conditions
that keep their transition time while their status stays the same."""

from __future__ import annotations

from typing import Any

from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.metadata import now_iso

TERMINAL_PHASES = ("Succeeded", "Failed")


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def condition(previous: list[Obj], kind: str, status: str, reason: str | None = None, message: str | None = None,
              **extra: Any) -> Obj:
    """A condition that keeps its lastTransitionTime while its status stays the same."""
    old = next((c for c in previous if c.get("type") == kind), None)
    entry = {"type": kind, "status": status, **extra}
    if reason is not None:
        entry["reason"] = reason
    if message is not None:
        entry["message"] = message
    keep = old is not None and old.get("status") == status
    entry["lastTransitionTime"] = old.get("lastTransitionTime", now_iso()) if keep else now_iso()
    return entry
