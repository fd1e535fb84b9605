"""What every object's metadata gets and must be, whatever its kind: timestamps, generated names,
and the validation of names, labels and annotations."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import Any

from radstream.sandbox.kube.kinds import Obj


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    # Same alphabet as Kubernetes name generation: no vowels, no look-alike characters.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _label_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "name part must be non-empty"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None


def _label_value_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "a label value must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None


def label_problems(labels: Any, field: str) -> list[tuple[str, str, str]]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(field, "FieldValueInvalid", "Invalid value: must be a map of strings")]
    causes = []
    for key, value in labels.items():
        problem = _label_key_problem(key)
        if problem:
            causes.append((field, "FieldValueInvalid", f'Invalid value: "{key}": {problem}'))
        problem = _label_value_problem(value)
        if problem:
            causes.append((f"{field}", "FieldValueInvalid", f'Invalid value: "{value}": {problem}'))
    return causes


def metadata_problems(obj: Obj) -> list[tuple[str, str, str]]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "FieldValueInvalid",
                       f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    causes += label_problems(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None and not (isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())):
        causes.append(("metadata.annotations", "FieldValueInvalid", "Invalid value: must be a map of strings"))
    return causes
