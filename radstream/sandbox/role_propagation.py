"""On AWS a role created a moment ago cannot be assumed yet (IAM is eventually consistent), and
Lambda, Step Functions, Firehose and EKS refuse to create what would use it, each with its own
error. moto accepts at once, which hides a missing retry. For a role younger than a short window
these moto calls refuse as AWS does; RADSTREAM_SANDBOX_ROLE_PROPAGATION_SECONDS sets the window."""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

WINDOW_ENV = "RADSTREAM_SANDBOX_ROLE_PROPAGATION_SECONDS"
DEFAULT_WINDOW_S = 2.0


def role_is_propagating(role_arn: str) -> bool:
    """True for a role this emulated account created less than the window ago. Unknown roles are
    left to moto (which lets most services name roles that do not exist)."""
    from moto.core.utils import utcnow
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        return False
    try:
        role = iam_backends[parts[4]][parts[1]].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto raises its own not-found for unknown roles
        return False
    window = float(os.environ.get(WINDOW_ENV, DEFAULT_WINDOW_S))
    return (utcnow() - role.create_date).total_seconds() < window


Fix = Callable[[Callable[..., Any]], Callable[..., Any]]


def refuses_propagating_roles(roles: Callable[[dict[str, Any]], list[str | None]],
                              refusal: Callable[[str], Exception]) -> Fix:
    """A moto_fixes fix: before the original backend method runs, raise refusal(arn) when one of
    the role ARNs `roles` finds in its (bound) arguments is still propagating."""

    def fix(original: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(original)

        def refusing(*args: Any, **kwargs: Any) -> Any:
            for arn in roles(signature.bind(*args, **kwargs).arguments):
                if arn and role_is_propagating(arn):
                    raise refusal(arn)
            return original(*args, **kwargs)

        return refusing

    return fix


# The errors below are worded as each service words them.
def _lambda_refusal(arn: str) -> Exception:
    from moto.awslambda.exceptions import InvalidParameterValueException

    return InvalidParameterValueException("The role defined for the function cannot be assumed by Lambda.")


def _states_refusal(arn: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError("AccessDeniedException", "Neither the global service principal states.amazonaws.com, nor "
                                                  "the regional one is authorized to assume the provided role.")


def _firehose_refusal(arn: str) -> Exception:
    from moto.firehose.exceptions import InvalidArgumentException

    return InvalidArgumentException(f"Firehose is unable to assume role {arn}. Please check the role provided.")


def _eks_cluster_refusal(arn: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(message=f"Role with arn: {arn}, could not be assumed because it does not exist "
                                             "or the trusted entity is not correct")


def _eks_nodegroup_refusal(arn: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(message="Following required service principals [ec2.amazonaws.com] were not found "
                                             f"in the trust relationships of nodeRole {arn}")


def _firehose_roles(a: dict[str, Any]) -> list[str | None]:
    sources = [a.get("kinesis_stream_source_configuration"), a.get("s3_destination_configuration"),
               a.get("extended_s3_destination_configuration")]
    return [source.get("RoleARN") for source in sources if source]


def install(wrap: Callable[[type, str, Fix], None]) -> None:
    """Apply every refusal through moto_fixes' wrap(owner, attribute, fix)."""
    from moto.awslambda.models import LambdaBackend
    from moto.eks.models import EKSBackend
    from moto.firehose.models import FirehoseBackend
    from moto.stepfunctions.models import StepFunctionBackend

    wrap(LambdaBackend, "create_function",
         refuses_propagating_roles(lambda a: [a["spec"].get("Role")], _lambda_refusal))
    # The parser backend (executions run) calls these through super().
    wrap(StepFunctionBackend, "create_state_machine",
         refuses_propagating_roles(lambda a: [a.get("roleArn")], _states_refusal))
    wrap(StepFunctionBackend, "update_state_machine",
         refuses_propagating_roles(lambda a: [a.get("role_arn")], _states_refusal))
    wrap(FirehoseBackend, "create_delivery_stream", refuses_propagating_roles(_firehose_roles, _firehose_refusal))
    wrap(EKSBackend, "create_cluster", refuses_propagating_roles(lambda a: [a.get("role_arn")], _eks_cluster_refusal))
    wrap(EKSBackend, "create_nodegroup",
         refuses_propagating_roles(lambda a: [a.get("node_role")], _eks_nodegroup_refusal))
