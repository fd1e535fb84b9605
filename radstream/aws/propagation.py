"""IAM is eventually consistent: for several seconds after a role is created, the services it is
for cannot assume it, and each refuses to create what would use it with its own error. Those
refusals are retried; any other error (a malformed request, a real trust mistake named otherwise)
is raised at once."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from radstream.aws import error_code

T = TypeVar("T")

# (error code, part of the message) as each service words "I cannot assume that role (yet)".
NOT_YET_ASSUMABLE = (
    ("InvalidParameterValueException", "cannot be assumed by lambda"),  # Lambda CreateFunction
    ("AccessDeniedException", "is authorized to assume the provided role"),  # Step Functions
    ("InvalidArgumentException", "is unable to assume role"),  # Firehose CreateDeliveryStream
    ("InvalidParameterException", "could not be assumed"),  # EKS CreateCluster
    ("InvalidParameterException", "not found in the trust relationships"),  # EKS CreateNodegroup
)


def role_not_yet_assumable(exc: Exception) -> bool:
    code, message = error_code(exc), str(exc).lower()
    return any(code == c and fragment in message for c, fragment in NOT_YET_ASSUMABLE)


def retry_while_role_propagates(call: Callable[[], T], *, timeout: float = 90.0, interval: float = 2.0) -> T:
    """call(), repeated while the service says the role cannot be assumed yet, for up to timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception as exc:
            if not role_not_yet_assumable(exc) or time.monotonic() + interval > deadline:
                raise
        time.sleep(interval)
