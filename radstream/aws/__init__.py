"""Small idempotent helpers per AWS service. Each takes boto3 clients and plain arguments, never
the context, so it can be tested against moto and reused by any phase.

Conventions: `*_drift(...)` is read-only and lists what differs from the desired state ("missing"
when the resource does not exist); `ensure_*` repairs exactly that drift and makes zero mutating
calls when there is none; `delete_*` is quiet when the resource is already gone."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def unless_absent(call: Callable[..., T], absent: str, **params: Any) -> T | None:
    """call(**params), or None when AWS answers `absent` (the error code meaning the resource is not
    there): one way for reads that may find nothing and for deletes of what is already gone."""
    try:
        return call(**params)
    except Exception as exc:
        if error_code(exc) == absent:
            return None
        raise


def make_arn(partition: str, service: str, region: str, account_id: str, resource: str) -> str:
    """An ARN in the caller's partition (aws, aws-cn, aws-us-gov…: radstream.names.partition_of)."""
    return f"arn:{partition}:{service}:{region}:{account_id}:{resource}"

