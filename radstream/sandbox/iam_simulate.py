"""iam:SimulatePrincipalPolicy, which moto 5.2 does not implement, answered as IAM does: every action
on every resource (just "*" when none is given), decided over the principal's own policies (a
user's inline, attached and groups' policies; a role's or a group's inline and attached ones) plus
PolicyInputList, in pages of MaxItems (100 by default) with Marker. The decision is the sandbox's
IAM evaluator (radstream.sandbox.iam_policy: moto's own ignores most condition operators); a
condition key a matching statement needs but the request did not give is listed in
MissingContextValues, as IAM does."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from radstream.sandbox.iam_policy import ALLOW, EXPLICIT_DENY, decide

DEFAULT_MAX_ITEMS = 100
DECISIONS = {ALLOW: "allowed", EXPLICIT_DENY: "explicitDeny"}  # anything else: implicitDeny


def _parsed(document: Any) -> dict[str, Any]:
    return json.loads(unquote(document)) if isinstance(document, str) else document


def _managed_document(policy: Any) -> str:
    return next(v.document for v in policy.versions if v.is_default)


def principal_documents(backend: Any, arn: str) -> list[Any]:
    """The policy documents of the user, group or role an IAM ARN names (NoSuchEntity when none)."""
    from moto.iam.exceptions import InvalidInput, NoSuchEntity

    kind, _, path_and_name = arn.split(":", 5)[-1].partition("/")
    name = path_and_name.rsplit("/", 1)[-1]
    if kind == "user":
        user = backend.get_user(name)
        documents = list(user.policies.values()) + [_managed_document(p) for p in user.managed_policies.values()]
        for group in backend.get_groups_for_user(name):
            documents += principal_documents(backend, group.arn)
        return documents
    if kind in ("role", "group"):
        entity = backend.get_role(name) if kind == "role" else backend.get_group(name)
        return list(entity.policies.values()) + [_managed_document(p) for p in entity.managed_policies.values()]
    if not arn.startswith("arn:"):
        raise InvalidInput(f"Invalid ARN: {arn}")
    raise NoSuchEntity(f"No such entity: {arn}")


def missing_context_keys(documents: list[dict[str, Any]], action: str, context: dict[str, str]) -> list[str]:
    """Condition keys of the statements naming the action that the request gave no value for."""
    from radstream.aws.operator_policy import action_matches

    given = {key.lower() for key in context}
    found: dict[str, None] = {}
    for document in documents:
        statements = document.get("Statement") or []
        for statement in [statements] if isinstance(statements, dict) else statements:
            actions = statement.get("Action", [])
            if any(action_matches(p, action) for p in ([actions] if isinstance(actions, str) else actions)):
                found.update(dict.fromkeys(key for pairs in (statement.get("Condition") or {}).values()
                                           for key in pairs if key.lower() not in given))
    return list(found)


def _result(action: str, resource: str, decision: str, missing: list[str], specific: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": decision,
                              "MatchedStatements": [], "MissingContextValues": [] if specific else missing}
    if specific:
        result["ResourceSpecificResults"] = [{"EvalResourceName": resource, "EvalResourceDecision": decision,
                                              "MatchedStatements": [], "MissingContextValues": missing}]
    return result


def simulate_principal_policy(self: Any) -> Any:
    """The IamResponse method moto lacks."""
    from moto.core.responses import ActionResult

    documents = [_parsed(d) for d in principal_documents(self.backend, self._get_param("PolicySourceArn"))
                 + self._get_param("PolicyInputList", [])]
    resources = self._get_param("ResourceArns", []) or ["*"]
    context = {entry["ContextKeyName"]: (entry.get("ContextKeyValues") or [""])[0]
               for entry in self._get_param("ContextEntries", [])}
    results = [_result(action, resource, DECISIONS.get(decide(documents, action, resource, context), "implicitDeny"),
                       missing_context_keys(documents, action, context), resource != "*")
               for action in self._get_param("ActionNames", []) for resource in resources]
    start, size = int(self._get_param("Marker") or 0), int(self._get_param("MaxItems") or DEFAULT_MAX_ITEMS)
    body: dict[str, Any] = {"EvaluationResults": results[start:start + size], "IsTruncated": start + size < len(results)}
    if body["IsTruncated"]:
        body["Marker"] = str(start + size)
    return ActionResult(body)


def install() -> None:
    from moto.iam.responses import IamResponse

    IamResponse.simulate_principal_policy = simulate_principal_policy  # type: ignore[attr-defined]
