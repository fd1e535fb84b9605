"""Which of the actions manifests/iam/operator.json grants the caller may not perform, asked of IAM's
policy simulator (iam:SimulatePrincipalPolicy) for the caller's own user or role.

Each Allow statement is simulated on its own resources with the condition values it names: the
simulator decides a statement scoped to resources as an implicit deny when asked about "*", and a
condition whose key the request does not give as unmet."""

from __future__ import annotations

from itertools import product
from typing import Any


def caller_identity(sts: Any) -> dict[str, Any]:
    """Who the credentials are (Account, Arn, UserId); fails when there are none that work."""
    return sts.get_caller_identity()


def principal_arn(caller_arn: str) -> str:
    """The IAM ARN the simulator takes for GetCallerIdentity's ARN: an assumed-role session
    (arn:aws:sts::A:assumed-role/NAME/session) becomes its role, arn:aws:iam::A:role/NAME (a role
    with a path must be given by its full ARN)."""
    _, partition, service, _, account, resource = caller_arn.split(":", 5)
    if service == "sts" and resource.startswith("assumed-role/"):
        return f"arn:{partition}:iam::{account}:role/{resource.split('/')[1]}"
    return caller_arn


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def simulations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """SimulatePrincipalPolicy requests (less PolicySourceArn) covering every Allow statement: one per
    combination of the values its conditions accept."""
    requests = []
    for statement in _listed(document["Statement"]):
        if statement["Effect"] != "Allow":
            continue
        base: dict[str, Any] = {"ActionNames": _listed(statement["Action"])}
        resources = [r for r in _listed(statement["Resource"]) if r != "*"]
        if resources:
            base["ResourceArns"] = resources
        keys = [key for pairs in (statement.get("Condition") or {}).values() for key in pairs]
        values = [_listed(pairs[key]) for pairs in (statement.get("Condition") or {}).values() for key in pairs]
        for combination in product(*values):
            entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
                       for k, v in zip(keys, combination, strict=True)]
            requests.append({**base, "ContextEntries": entries} if entries else base)
    return requests


def missing_actions(iam: Any, principal: str, document: dict[str, Any]) -> list[str]:
    """The document's actions the principal is not allowed on every resource and condition value."""
    missing: dict[str, None] = {}
    paginator = iam.get_paginator("simulate_principal_policy")
    for request in simulations(document):
        for page in paginator.paginate(PolicySourceArn=principal, **request):
            missing.update(dict.fromkeys(r["EvalActionName"] for r in page["EvaluationResults"]
                                         if r["EvalDecision"] != "allowed"))
    return list(missing)
