"""Tags are a plain dict inside RadStream; each AWS service wants its own shape. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def to_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """{"a": "1"} -> [{"Key": "a", "Value": "1"}] (S3, IAM, EventBridge, ECR, Firehose, Athena);
    Step Functions wants key="key", value="value"."""
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def from_list(items: Iterable[Mapping[str, str]], key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {item[key]: item[value] for item in items}


def missing(current: Mapping[str, str], desired: Mapping[str, str]) -> dict[str, str]:
    """The desired tags that are absent or have another value (extra tags are left alone)."""
    return {k: v for k, v in desired.items() if current.get(k) != v}
