"""Failures as the user meets them. botocore's missing, expired or refused credentials and AWS's
AccessDenied (naming the action) become errors with a hint saying what to do; every failure is
reported with the same keys: `error`, `hint`, `type`. Pure: it reads exceptions, calls nothing."""

from __future__ import annotations

import re
from typing import Any

from radstream.errors import RadstreamError

DOCTOR = "`radstream doctor` checks credentials and permissions"
_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "ProfileNotFound"}
_SSO_EXPIRED = {"SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError", "SSOError"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
_REJECTED = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidAccessKeyId",
             "AuthFailure"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
           "AuthorizationErrorException", "Forbidden"}
_ACTION = re.compile(r"perform: ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")


class CloudError(RadstreamError):
    """An AWS refusal the user can act on; `type` is AWS's (or botocore's) name for it."""

    def __init__(self, message: str, hint: str, type_: str):
        super().__init__(message, hint)
        self.type = type_


def _aws_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return ((response or {}).get("Error") or {}).get("Code") if isinstance(response, dict) else None


def user_error(exc: BaseException) -> BaseException:
    """The failure to show: a RadstreamError as it is, a credential or access problem as a CloudError
    with a hint, anything else unchanged (a bug or an outage, shown with its own type)."""
    if isinstance(exc, RadstreamError):
        return exc
    name, code = type(exc).__name__, _aws_code(exc)
    if name in _NO_CREDENTIALS:
        return CloudError(f"no usable AWS credentials ({exc})",
                          f"set aws.profile in radstream.yaml or configure the default credential chain; {DOCTOR}",
                          name)
    if name in _SSO_EXPIRED:
        return CloudError(f"the AWS SSO session cannot be used ({exc})", "run `aws sso login` and retry", name)
    if code in _EXPIRED:
        return CloudError(f"the AWS credentials have expired ({code})",
                          "refresh them (`aws sso login`, or new temporary keys) and run the same command again; "
                          "it resumes where it stopped", code)
    if code in _REJECTED:
        return CloudError(f"AWS does not recognise these credentials ({code})",
                          f"check the access key, the profile and the region; {DOCTOR}", code)
    if code in _DENIED:
        message = str(((getattr(exc, "response", None) or {}).get("Error") or {}).get("Message") or exc)
        found = _ACTION.search(message)
        action = found.group(1) if found else getattr(exc, "operation_name", None) or "the call"
        return CloudError(f"AWS refused {action} ({code}): {message}",
                          f"grant {action} to the operator (manifests/iam/operator.json, operator-read.json); "
                          f"{DOCTOR}", code)
    return exc


def describe(exc: BaseException) -> str:
    """One line (and its hint) for logs, state and human output."""
    shown = user_error(exc)
    return str(shown) if isinstance(shown, RadstreamError) else f"{type(shown).__name__}: {shown}"


def error_fields(exc: BaseException) -> dict[str, Any]:
    """`error` (the whole message, hint included, as it always was), `hint` alone and `type`, as --json
    reports them."""
    shown = user_error(exc)
    if isinstance(shown, RadstreamError):
        return {"error": describe(exc), "hint": shown.hint, "type": getattr(shown, "type", type(shown).__name__)}
    return {"error": describe(exc), "hint": None, "type": type(shown).__name__}
