"""The IAM actions the operator's AWS calls need, and whether manifests/iam/operator.json allows them.

A botocore `before-call` hook on the operator's session (radstream/context.py) keeps the policy true:
with OPERATOR_POLICY_CHECK=1 a call whose action the policy does not allow raises before it is sent,
so the test whose run made it fails (CLI subprocesses inherit the variable); with
OPERATOR_POLICY_CALL_LOG=path every call is appended there, to regenerate the policy from.
The variables do not start with RADSTREAM_: those are settings (and tests strip them from the CLI's
environment). Only the action is checked here; the resources are scoped in the policy itself."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any

from radstream.errors import RadstreamError
from radstream.resources import manifest

# IAM caps a managed policy at 6,144 characters, so the operator's permissions ship as two: what it
# changes (scoped to the deployment's resources) and what it only reads on "*".
# The network (phase 0's VPC) has a third; the public door, GuardDuty, the dead-letter queue and the
# de-identification key a fourth.
POLICY_NAMES = ("operator.json", "operator-read.json", "operator-network.json", "operator-edge.json")
CHECK_VARIABLE = "OPERATOR_POLICY_CHECK"
LOG_VARIABLE = "OPERATOR_POLICY_CALL_LOG"

# AWS answers these for any principal, even under an explicit Deny: no policy grants them.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
# The IAM service prefix where it differs from the API's signing name.
PREFIXES = {"tagging": "tag", "monitoring": "cloudwatch"}
# Operations authorised by an action of another name (the IAM Service Authorization Reference).
ACTIONS = {
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("s3", "PutBucketEncryption"): "s3:PutEncryptionConfiguration",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "GetBucketNotificationConfiguration"): "s3:GetBucketNotification",
    ("s3", "PutBucketNotificationConfiguration"): "s3:PutBucketNotification",
    ("s3", "GetBucketLifecycleConfiguration"): "s3:GetLifecycleConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "s3:PutLifecycleConfiguration",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    # AWS Budgets authorises every read with ViewBudget and every change with ModifyBudget.
    ("budgets", "DescribeBudget"): "budgets:ViewBudget",
    ("budgets", "DescribeBudgets"): "budgets:ViewBudget",
    ("budgets", "DescribeNotificationsForBudget"): "budgets:ViewBudget",
    ("budgets", "CreateBudget"): "budgets:ModifyBudget",
    ("budgets", "DeleteBudget"): "budgets:ModifyBudget",
}


class UncoveredAction(RadstreamError):
    """An AWS call the operator policy does not allow: the policy and the code disagree."""


def service_prefix(service_model: Any) -> str:
    name = service_model.signing_name or service_model.endpoint_prefix
    return PREFIXES.get(name, name)


def iam_action(prefix: str, operation: str) -> str:
    """The IAM action that authorises one API operation of the service with that prefix."""
    return ACTIONS.get((prefix, operation), f"{prefix}:{operation}")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def action_matches(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, `*` any run of characters, `?` any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, action, flags=re.IGNORECASE) is not None


def _statement_covers(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(action_matches(p, action) for p in _listed(statement["NotAction"]))
    return any(action_matches(p, action) for p in _listed(statement.get("Action", [])))


def allows(document: dict[str, Any], action: str) -> bool:
    """Whether some Allow statement names the action and no unconditional Deny does."""
    statements = _listed(document.get("Statement", []))
    if any(s["Effect"] == "Deny" and not s.get("Condition") and _statement_covers(s, action) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _statement_covers(s, action) for s in statements)


def policy_actions(document: dict[str, Any]) -> list[str]:
    """Every action an Allow statement names, in order, once (what doctor simulates)."""
    found: dict[str, None] = {}
    for statement in _listed(document.get("Statement", [])):
        if statement["Effect"] == "Allow":
            found.update(dict.fromkeys(_listed(statement.get("Action", []))))
    return list(found)


def operator_documents(variables: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The operator's managed policies, rendered for a deployment when `variables` are given (else as
    templates: the ${...} placeholders only occur in resources, so they parse as they are)."""
    from radstream.templating import substitute

    texts = [manifest("iam", name).read_text() for name in POLICY_NAMES]
    return [json.loads(substitute(text, variables) if variables else text) for text in texts]


def merged(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Several policies as one document: what a principal with all of them attached may do."""
    return {"Version": "2012-10-17", "Statement": [s for d in documents for s in _listed(d["Statement"])]}


@lru_cache(maxsize=1)
def operator_policy() -> dict[str, Any]:
    return merged(operator_documents())


def botocore_hook(model: Any = None, **_: object) -> None:
    """Register on `before-call`: log the call's action and refuse one the policy does not allow."""
    check, log = os.environ.get(CHECK_VARIABLE) == "1", os.environ.get(LOG_VARIABLE)
    if model is None or not (check or log):
        return
    action = iam_action(service_prefix(model.service_model), model.name)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{action} {model.service_model.service_name}.{model.name}\n")
    if check and action not in ALWAYS_ALLOWED and not allows(operator_policy(), action):
        raise UncoveredAction(
            f"{action} (for {model.service_model.service_name} {model.name}) is not allowed by the operator policy",
            hint="add the action to manifests/iam/operator.json (scoped to the deployment's resources), or to "
                 "operator-read.json when it only reads",
        )
