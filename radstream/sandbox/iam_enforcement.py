"""IAM enforced for the sandbox's Lambda functions, and only for them.

The Lambda runner gives each handler an STS AssumeRole session of its execution role
(radstream.sandbox.role_sessions). A request signed with such a session — moto issued it, to a role
that trusts lambda.amazonaws.com — is authorised here as AWS would: its signature checked, then the
role's identity policies decide (radstream.sandbox.iam_policy), so a missing action fails the
pipeline as on AWS. Every other caller (the operator's and the tests' static keys, moto's own Step
Functions) keeps moto's default of no authorisation; moto's global switch for that
(INITIAL_NO_AUTH_ACTION_COUNT) would check every caller.

Parity details reproduced for these callers:
- GetObject/HeadObject of a missing key answers 403 AccessDenied unless s3:ListBucket on the bucket
  is allowed with s3:prefix = the key; then moto's 404 stands.
- CopyObject also needs s3:GetObject on its source, with the same rule for a missing source.
- Kinesis calls are judged against the stream's ARN (moto has no resource for them).
Not reproduced: grants by resource-based policies, permission boundaries, session policies, SCPs."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from radstream.sandbox.iam_policy import ALLOW, EXPLICIT_DENY, decide

LAMBDA_SERVICE = "lambda.amazonaws.com"


def authorize_lambda_sessions(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps moto's ActionAuthenticatorMixin._authenticate_and_authorize_action."""

    def authenticate_and_authorize(self, iam_request_cls, resource="*"):
        if not _is_lambda_session(self):
            return original(self, iam_request_cls, resource)
        _Check(self, iam_request_cls, resource).run()

    return authenticate_and_authorize


def _is_lambda_session(response: Any) -> bool:
    if "X-Amz-Security-Token" not in response.headers:
        return False
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    partition = get_partition(response.region)
    assumed = sts_backends[response.current_account][partition].get_assumed_role_from_access_key(
        response.get_access_key())
    if assumed is None:
        return False
    try:
        role = iam_backends[response.current_account][partition].get_role_by_arn(assumed.role_arn)
    except NotFoundException:  # the role is gone: nothing may allow its session anything
        return True
    return _trusts_lambda(role.assume_role_policy_document)


def _trusts_lambda(trust_policy: Any) -> bool:
    document = json.loads(unquote(trust_policy)) if isinstance(trust_policy, str) else trust_policy
    statements = document.get("Statement") or []
    for statement in [statements] if isinstance(statements, dict) else statements:
        principal = statement.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and LAMBDA_SERVICE in services:
            return True
    return False


class _Check:
    """One request of a Lambda session, authorised as IAM and S3 would."""

    def __init__(self, response: Any, iam_request_cls: type, resource: str) -> None:
        from moto.iam.access_control import IAMPolicy, S3IAMRequest
        from moto.iam.exceptions import NotFoundException

        self.response = response
        self.is_s3 = issubclass(iam_request_cls, S3IAMRequest)
        query = urlparse(response.uri).query
        path = f"{response.raw_path}?{query}" if query else response.raw_path
        # Builds moto's request model as moto's own check does; raises InvalidToken/InvalidAccessKeyId.
        self.request = iam_request_cls(account_id=response.current_account, method=response.method, path=path,
                                       data=response.data, body=response.raw_body, headers=response.headers,
                                       action=response._get_action())
        self.action: str = self.request._action
        self.resource = resource if self.is_s3 else self._resource_of(resource)
        self.principal: str = self.request._access_key.arn
        try:
            self.documents = [IAMPolicy(p)._policy_json for p in self.request._access_key.collect_policies()]
        except NotFoundException:  # the role was deleted: no policy applies
            self.documents = []

    def run(self) -> None:
        self.request.check_signature()
        if self.action == "sts:GetCallerIdentity":  # AWS answers it whatever the policies say
            return
        self._require(self.action, self.resource, self._context())
        if not self.is_s3:
            return
        if self.action == "s3:GetObject":
            self._missing_key_needs_list(self.resource)
        copy_source = self.response.headers.get("x-amz-copy-source")
        if self.action == "s3:PutObject" and copy_source:
            source = unquote(urlparse(copy_source).path).lstrip("/")
            source_arn = f"{self.resource.split(':::', 1)[0]}:::{source}"
            self._require("s3:GetObject", source_arn, {})
            self._missing_key_needs_list(source_arn)

    def _context(self) -> dict[str, str]:
        prefix = (self.response.querystring.get("prefix") or [None])[0] if self.is_s3 else None
        return {"s3:prefix": prefix} if self.action == "s3:ListBucket" and prefix is not None else {}

    def _missing_key_needs_list(self, object_arn: str) -> None:
        """S3 tells a missing key (404) only to who may list it; everyone else gets 403."""
        from moto.s3.exceptions import S3ClientError

        head, _, path = object_arn.partition(":::")
        bucket, _, key = path.partition("/")
        try:
            exists = self.response.backend.get_object(bucket, key) is not None
        except S3ClientError:  # no such bucket: moto answers that itself
            return
        if not exists:
            self._require("s3:ListBucket", f"{head}:::{bucket}", {"s3:prefix": key})

    def _require(self, action: str, resource: str, context: dict[str, str]) -> None:
        decision = decide(self.documents, action, resource, context)
        if decision == ALLOW:
            return
        quoted = f'"{resource}"' if self.is_s3 else resource
        reason = ("with an explicit deny in an identity-based policy" if decision == EXPLICIT_DENY
                  else f"because no identity-based policy allows the {action} action")
        raise self._denial(f"{action} on resource: {quoted} {reason}")

    def _denial(self, what: str) -> Exception:
        """AccessDenied as the service words it: S3's XML, JSON protocols' AccessDeniedException,
        the query protocols' AccessDenied."""
        from moto.core.exceptions import AccessDeniedError, JsonRESTError
        from moto.s3.exceptions import S3ClientError

        message = f"User: {self.principal} is not authorized to perform: {what}"
        if self.is_s3:
            return S3ClientError("AccessDenied", message)
        if "json" in (self.response.headers.get("Content-Type") or ""):
            return JsonRESTError("AccessDeniedException", message)
        return AccessDeniedError(self.principal, what)

    def _resource_of(self, moto_resource: str) -> str:
        """The ARN IAM judges the call against, where moto has none ("*" matches only Resource "*")."""
        if self.action.startswith("kinesis:"):
            params = json.loads(self.response.body or "{}")
            if params.get("StreamARN"):
                return str(params["StreamARN"])
            if params.get("StreamName"):
                from moto.utilities.utils import get_partition

                region, account = self.response.region, self.response.current_account
                return f"arn:{get_partition(region)}:kinesis:{region}:{account}:stream/{params['StreamName']}"
        return moto_resource


def install(wrap: Callable[[type, str, Callable[..., Any]], None]) -> None:
    from moto.core.authorization import ActionAuthenticatorMixin

    wrap(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize_lambda_sessions)
