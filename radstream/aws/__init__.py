"""Small idempotent helpers per AWS service. Each takes boto3 clients and plain arguments, never
the context, so it can be tested against moto and reused by any phase.

Conventions: `*_drift(...)` is read-only and lists what differs from the desired state ("missing"
when the resource does not exist); `ensure_*` repairs exactly that drift and makes zero mutating
calls when there is none; `delete_*` is quiet when the resource is already gone."""

from __future__ import annotations

from typing import Any

# Operation-name prefixes that change state; used to count mutations (a converged `up` makes none).
MUTATING_PREFIXES = (
    "Create", "Put", "Update", "Delete", "Tag", "Untag", "Attach", "Detach", "Add", "Remove",
    "Publish", "Start", "Stop", "Enable", "Disable", "Set", "Register", "Deregister", "Upload",
    "Associate", "Disassociate", "Modify", "Increase", "Decrease", "Merge", "Split", "Reset",
    "Abort", "Complete", "Copy", "Restore", "Cancel", "Run", "Send", "Invoke", "Batch",
)


def is_mutating(operation_name: str) -> bool:
    """True for API operations that change state (BatchGet* is a read)."""
    if operation_name.startswith(("BatchGet", "BatchDescribe")):
        return False
    return operation_name.startswith(MUTATING_PREFIXES)


def record_mutations(client: Any) -> list[str]:
    """Attach a hook to a boto3 client; the returned list grows with each mutating call's name."""
    seen: list[str] = []

    def before_call(model: Any, **_: Any) -> None:
        if is_mutating(model.name):
            seen.append(model.name)

    client.meta.events.register("before-call.*.*", before_call)
    return seen


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
