"""Label and field selectors: parsed from their text form (`?labelSelector=`, `?fieldSelector=`) or
from a LabelSelector object, and matched against objects."""

from __future__ import annotations

import re
from typing import Any

from radstream.sandbox.kube.kinds import Obj

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values); operators as in matchExpressions

_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split a selector on commas that are not inside `in (a,b)` parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h` into requirements; ValueError when malformed."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append((m.group(1), "In" if m.group(2) == "in" else "NotIn", values))
        elif m := _EQ_TERM.match(term):
            requirements.append((m.group(1), "NotIn" if m.group(2) == "!=" else "In", (m.group(3),)))
        elif m := _EXISTS_TERM.match(term):
            requirements.append((m.group(2), "DoesNotExist" if m.group(1) else "Exists", ()))
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
    return requirements


def selector_requirements(selector: Obj | None) -> list[Requirement]:
    """Requirements of a LabelSelector object (matchLabels + matchExpressions)."""
    selector = selector or {}
    requirements: list[Requirement] = [(k, "In", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        requirements.append((expr["key"], expr["operator"], tuple(expr.get("values") or ())))
    return requirements


def labels_match(requirements: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "In" and not (present and value in values):
            return False
        if op == "NotIn" and present and value in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op in ("Gt", "Lt"):
            try:
                number, bound = int(value or ""), int(values[0])
            except (ValueError, IndexError):
                return False
            if (op == "Gt" and not number > bound) or (op == "Lt" and not number < bound):
                return False
    return True


def selector_string(selector: Obj | None) -> str:
    """The textual form of a LabelSelector (what Scale.status.selector carries)."""
    parts = []
    for key, op, values in selector_requirements(selector):
        if op == "In" and len(values) == 1:
            parts.append(f"{key}={values[0]}")
        elif op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        else:
            parts.append(key if op == "Exists" else f"!{key}")
    return ",".join(parts)


FieldRequirement = tuple[list[str], bool, str]  # (path, equal?, value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse `spec.nodeName=n1,metadata.name!=x`; any dotted path of the object is accepted."""
    requirements = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ValueError(f"invalid field selector: {term.strip()!r}")
        requirements.append((m.group(1).split("."), m.group(2) != "!=", m.group(3)))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Obj) -> bool:
    for path, equal, expected in requirements:
        value: Any = obj
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        text = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        if (text == expected) != equal:
            return False
    return True
