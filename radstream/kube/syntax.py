"""What Kubernetes accepts as a label key or value, and what EKS accepts as a nodegroup taint (the
same key and value syntax, and three effects). Each check returns the problem, or None. Pure."""

from __future__ import annotations

import re

# A name: 63 characters at most, alphanumeric at both ends, "-", "_" and "." inside.
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# A key's optional prefix is a DNS subdomain: lower-case labels joined by dots, 253 characters at most.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE")
TAINT_FIELDS = {"key", "value", "effect"}
MAX_TAINTS = 50  # per EKS nodegroup


def key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"key {key!r}: the part before '/' must be a DNS subdomain (lower-case, dots, 253 characters at most)"
    if not _NAME.match(name):
        return (f"key {key!r}: the name must be 1-63 characters, letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def value_problem(value: str) -> str | None:
    if value and not _NAME.match(value):
        return (f"value {value!r}: must be empty or 1-63 characters, letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_problems(labels: dict[str, str]) -> list[str]:
    return [p for key, value in labels.items() for p in (key_problem(key), value_problem(value)) if p]


def taint_problems(taints: list[dict[str, str]]) -> list[str]:
    problems = [f"at most {MAX_TAINTS} taints per nodegroup"] if len(taints) > MAX_TAINTS else []
    for taint in taints:
        unknown = set(taint) - TAINT_FIELDS
        if unknown or "key" not in taint or "effect" not in taint:
            problems.append(f"{taint}: a taint has a key, an effect and optionally a value, nothing else")
            continue
        if taint["effect"] not in TAINT_EFFECTS:
            problems.append(f"effect {taint['effect']!r}: EKS takes {', '.join(TAINT_EFFECTS)} "
                            "(not Kubernetes' NoSchedule spelling)")
        problems += [p for p in (key_problem(taint["key"]), value_problem(taint.get("value", ""))) if p]
    return problems
