"""IAM's decision for one request against identity policies, as AWS documents its evaluation logic:
an explicit Deny wins, else any Allow, else the implicit deny. Pure: documents in, decision out.

moto's own evaluator ignores every condition operator but StringEquals and lets an unmet condition
of an Allow deny outright; RadStream's policies rely on StringLike (`s3:prefix`), so this one is
used for the sandbox's Lambda sessions (radstream.sandbox.iam_enforcement)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

ALLOW = "allow"
EXPLICIT_DENY = "explicit deny"
IMPLICIT_DENY = "implicit deny"


def decide(documents: Iterable[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str]) -> str:
    """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY for `action` on `resource` with the request's condition
    keys `context` (e.g. {"s3:prefix": "incoming/A.json"})."""
    keys = {name.lower(): value for name, value in context.items()}  # condition keys ignore case
    allowed = False
    for document in documents:
        statements = document.get("Statement") or []
        for statement in [statements] if isinstance(statements, Mapping) else statements:
            deny = statement.get("Effect") == "Deny"
            if not (_matches(statement, "Action", action, ignore_case=True)
                    and _matches(statement, "Resource", resource, ignore_case=False)
                    and _conditions_hold(statement.get("Condition") or {}, keys, deny)):
                continue
            if deny:
                return EXPLICIT_DENY
            allowed = allowed or statement.get("Effect") == "Allow"
    return ALLOW if allowed else IMPLICIT_DENY


def _matches(statement: Mapping[str, Any], element: str, value: str, ignore_case: bool) -> bool:
    if element in statement:
        return _any_glob(statement[element], value, ignore_case)
    if f"Not{element}" in statement:
        return not _any_glob(statement[f"Not{element}"], value, ignore_case)
    return False  # an identity policy statement without Action or Resource grants nothing


def _any_glob(patterns: Any, value: str, ignore_case: bool) -> bool:
    flags = re.IGNORECASE if ignore_case else 0
    return any(re.fullmatch(_glob(str(p)), value, flags) for p in _listed(patterns))


def _glob(pattern: str) -> str:
    """IAM wildcards: * any run of characters, ? exactly one."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


_STRING_TESTS = {
    "StringEquals": lambda want, got: got == want,
    "StringEqualsIgnoreCase": lambda want, got: got.lower() == want.lower(),
    "StringLike": lambda want, got: re.fullmatch(_glob(want), got) is not None,
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": lambda want, got: re.fullmatch(_glob(want), got) is not None,
    "Bool": lambda want, got: got.lower() == want.lower(),
}
_NEGATIONS = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
              "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], keys: Mapping[str, str], deny: bool) -> bool:
    """Every operator's every key must hold. An operator this evaluator does not know fails safe:
    it keeps an Allow from applying and lets a Deny apply."""
    for operator, tests in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator[: -len("IfExists")] if if_exists else operator
        negated = base in _NEGATIONS
        test = _STRING_TESTS.get(_NEGATIONS.get(base, base))
        if test is None and base != "Null":
            return deny
        for key, wanted in tests.items():
            got = keys.get(key.lower())
            if base == "Null":  # "true": the key must be absent
                holds = (got is None) == (str(_listed(wanted)[0]).lower() == "true")
            elif got is None:  # absent: only negated and ...IfExists operators hold
                holds = negated or if_exists
            else:
                assert test is not None  # only "Null" has no test, and it took the first branch
                matched = any(test(str(want), got) for want in _listed(wanted))
                holds = not matched if negated else matched
            if not holds:
                return False
    return True
