"""Where moto 5.2 answers differently from AWS in ways RadStream depends on, make it answer like AWS.

Each fix wraps moto's original function; `install()` applies them all once, in the daemon's process.
Tests apply single fixes with monkeypatch through the same wrappers."""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable

_MARK = "radstream_fixed"


def unnamed_executions_get_a_uuid(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto names an unnamed execution "None", so a second unnamed StartExecution collides.
    AWS generates a UUID; do the same."""

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    return start_execution


def bucket_notification_reports_eventbridge(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto stores a bucket's EventBridgeConfiguration but leaves it out of
    GetBucketNotificationConfiguration; put it back so drift checks see what S3 would show."""

    def get_bucket_notification(self):
        response = original(self)
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return response
        status, headers, body = response
        body = body.decode() if isinstance(body, bytes) else body
        if "<EventBridgeConfiguration" not in body:
            if "</NotificationConfiguration>" in body:
                body = body.replace("</NotificationConfiguration>", "<EventBridgeConfiguration/></NotificationConfiguration>")
            else:  # moto answered with an empty result
                body = ('<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration>'
                        "<EventBridgeConfiguration/></NotificationConfiguration>")
        headers = {k: v for k, v in dict(headers).items() if k.lower() != "content-length"}
        return status, headers, body

    return get_bucket_notification


def deny_needs_its_condition_keys(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto treats a condition key it has no value for (aws:SecureTransport on its plain-HTTP
    endpoint) as satisfied, so a TLS-only bucket policy would deny every request. A Deny whose
    condition keys are absent from the request does not apply, as on AWS."""
    from moto.iam.access_control import PermissionResult

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        result = original(self, action, resource, principal, incoming_condition_values)
        condition = self._statement.get("Condition") or {}
        keys = {key for values in condition.values() for key in values}
        if (result == PermissionResult.DENIED and self._statement.get("Effect") == "Deny"
                and keys - set(incoming_condition_values or {})):
            return PermissionResult.NEUTRAL
        return result

    return is_action_permitted


def lambda_task_errors_are_named_by_lambda(original: Callable[..., Any]) -> Callable[..., Any]:
    """A Task whose Resource is a function ARN turns any error of Lambda's own API (a 429 throttle,
    a 5xx) into "Exception" in moto, so no Retry on Lambda.TooManyRequestsException ever matches.
    Step Functions names them "Lambda.<code>", as moto already does for arn:aws:states:::lambda:invoke."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    def _from_error(self, env, ex):
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
        return FailureEvent(env=env, error_name=CustomErrorName(error),
                            event_type=HistoryEventType.LambdaFunctionFailed,
                            event_details=EventDetails(lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                                error=error, cause=cause)))

    return _from_error


def secret_names_stay_taken_while_scheduled_for_deletion(original: Callable[..., Any]) -> Callable[..., Any]:
    # AWS keeps a deleted secret's name for its recovery window and refuses to create another under
    # it with InvalidRequestException; moto answers ResourceExistsException, as for a live secret.
    def create_secret(self, name, *args, **kwargs):
        from moto.secretsmanager.exceptions import InvalidRequestException

        existing = self.secrets.get(name)
        if existing is not None and getattr(existing, "deleted_date", None):
            raise InvalidRequestException("You can't create this secret because a secret with this name is already "
                                          "scheduled for deletion.")
        return original(self, name, *args, **kwargs)

    return create_secret


def _wrap(owner: type, attribute: str, fix: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    # Marked per fix, so installing twice is harmless and two fixes of one method (Lambda's
    # create_function: role propagation, then VPC ENIs) both apply.
    original = getattr(owner, attribute)
    applied: frozenset[str] = getattr(original, _MARK, frozenset())
    key = f"{fix.__module__}.{fix.__qualname__}"
    if key in applied:
        return
    fixed = fix(original)
    setattr(fixed, _MARK, applied | {key})
    setattr(owner, attribute, fixed)


def install() -> None:
    # EKS roles attach AWS managed policies, which moto only knows when told to load them.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    from moto.iam.access_control import IAMPolicyStatement
    from moto.s3.responses import S3Response
    from moto.secretsmanager.models import SecretsManagerBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    from radstream.sandbox import (
        eks_addons,
        eks_parity,
        elb_waf_parity,
        glue_crawler_role,
        iam_enforcement,
        iam_simulate,
        role_propagation,
        tagging_lag,
        vpc_parity,
    )

    _wrap(StepFunctionsParserBackend, "start_execution", unnamed_executions_get_a_uuid)
    _wrap(S3Response, "get_bucket_notification", bucket_notification_reports_eventbridge)
    _wrap(IAMPolicyStatement, "is_action_permitted", deny_needs_its_condition_keys)
    _wrap(StateTaskLambda, "_from_error", lambda_task_errors_are_named_by_lambda)
    _wrap(SecretsManagerBackend, "create_secret", secret_names_stay_taken_while_scheduled_for_deletion)
    role_propagation.install(_wrap)
    glue_crawler_role.install(_wrap)
    iam_enforcement.install(_wrap)
    eks_parity.install(_wrap)
    eks_addons.install()
    vpc_parity.install(_wrap)
    elb_waf_parity.install(_wrap)
    iam_simulate.install()
    tagging_lag.install(_wrap)
