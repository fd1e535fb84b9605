"""Counts the calls that change the world: mutating AWS API calls (through a botocore event hook)
and Kubernetes writes. A converged deployment re-applied must count zero. Also counts the retries
the run needed (throttling, 5xx, timeouts), so a run can report what it survived."""

from __future__ import annotations

import threading
from collections import Counter

# Operation-name prefixes of AWS calls that change state. Reads (Get/List/Describe/Head…) never match.
MUTATING_PREFIXES = (
    "Abort", "Add", "Apply", "Associate", "Attach", "Authorize", "BatchCreate", "BatchDelete",
    "BatchPut", "BatchUpdate", "BatchWrite", "Cancel", "Change", "Complete", "Copy", "Create",
    "Deactivate", "Decrease", "Delete", "Deregister", "Detach", "Disable", "Disassociate", "Enable",
    "Import", "Increase", "Invoke", "Merge", "Modify", "Publish", "Purge", "Put", "Reboot",
    "Register", "Remove", "Replace", "Reset", "Restore", "Revoke", "Rotate", "Run", "Send", "Set",
    "Split", "Start", "Stop", "Tag", "Terminate", "Untag", "Update", "Upload",
)
KUBE_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_mutating(operation: str) -> bool:
    return operation.startswith(MUTATING_PREFIXES)


class MutationCounter:
    """Thread-safe tally of mutations by `service:Operation` (or `k8s:METHOD`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def record(self, key: str) -> None:
        with self._lock:
            self.calls[key] += 1

    def record_retry(self, key: str, attempts: int = 1) -> None:
        with self._lock:
            self.retried[key] += attempts

    def retries(self) -> dict[str, object]:
        """{"total": n, "calls": {"s3:PutObject": n, "k8s:PATCH": n}} — what this run had to retry."""
        with self._lock:
            return {"total": sum(self.retried.values()), "calls": dict(sorted(self.retried.items()))}

    def botocore_hook(self, model=None, http_response=None, parsed=None, **_: object) -> None:
        """Register on `after-call`: fires once per API call (not per retry), after the answer, so
        a delete of something already gone — refused by the service — changes nothing and counts 0.
        botocore reports in the answer how many retries the call took."""
        if model is None:
            return
        attempts = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts") or 0
        if attempts:
            self.record_retry(f"{model.service_model.service_name}:{model.name}", attempts)
        if not is_mutating(model.name):
            return
        if http_response is not None and http_response.status_code >= 300:
            return
        self.record(f"{model.service_model.service_name}:{model.name}")

    def record_kube(self, method: str, path: str) -> None:
        if method.upper() in KUBE_WRITE_METHODS:
            self.record(f"k8s:{method.upper()}")
