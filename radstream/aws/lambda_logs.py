"""Lambda's REPORT lines, read back from a function's log group: per invocation its Duration, and on
an execution environment's first, its Init Duration. Read-only; quiet when the group does not exist."""

from __future__ import annotations

import re
from typing import Any

from radstream.aws import error_code

MAX_EVENTS = 10_000  # a bound on one read of a busy function's logs
_FIELD = re.compile(r"(Init Duration|Billed Duration|Duration): ([0-9.]+) ms")
_KEYS = {"Duration": "duration_ms", "Init Duration": "init_ms"}


def parse_report(message: str) -> dict[str, float] | None:
    """{"duration_ms", and "init_ms" after a cold start} of one REPORT line; None for any other line."""
    if not message.startswith("REPORT RequestId:"):
        return None
    found = {_KEYS[name]: float(value) for name, value in _FIELD.findall(message) if name in _KEYS}
    return found if "duration_ms" in found else None


def report_lines(logs: Any, group: str) -> list[dict[str, float]]:
    reports: list[dict[str, float]] = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, filterPattern='"REPORT RequestId"'):
            for event in page["events"]:
                parsed = parse_report(event["message"])
                if parsed is not None:
                    reports.append(parsed)
            if len(reports) >= MAX_EVENTS:
                break
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    return reports
