"""What CloudWatch gets from Lambda on AWS, into the emulated account's CloudWatch: the AWS/Lambda
metrics of every invocation (Invocations, Errors, Throttles, Duration, by FunctionName), and the
metrics a function's log declares in the embedded metric format (EMF), which CloudWatch Logs
extracts on AWS. moto does neither, so alarms and dashboards on them would never see a datapoint."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)


def _backend(account: str, region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account][region]


def _datum(name: str, value: float, unit: str, dimensions: list[dict[str, str]], at: datetime) -> dict[str, Any]:
    # moto keeps datapoints' times naive (UTC), as it parses the API's: an aware one breaks its comparisons.
    return {"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dimensions,
            "Timestamp": at.astimezone(timezone.utc).replace(tzinfo=None)}


def invocation_metrics(function: str, duration_ms: float | None, error: bool, throttled: bool) -> list[dict[str, Any]]:
    """AWS/Lambda's datapoints for one invocation; a throttled request is no invocation."""
    at, dimensions = datetime.now(timezone.utc), [{"Name": "FunctionName", "Value": function}]
    if throttled:
        return [_datum("Throttles", 1, "Count", dimensions, at)]
    return [_datum("Invocations", 1, "Count", dimensions, at), _datum("Errors", 1 if error else 0, "Count", dimensions, at),
            _datum("Duration", float(duration_ms or 0.0), "Milliseconds", dimensions, at)]


def embedded_metrics(logs: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, datapoints) of every EMF document among the log's lines, as CloudWatch Logs reads
    them: each directive's metrics, with the document's values of its dimension keys."""
    found = []
    for line in logs.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
            meta = document["_aws"]
            at = datetime.fromtimestamp(meta["Timestamp"] / 1000, timezone.utc)
            for directive in meta["CloudWatchMetrics"]:
                for dimension_set in directive.get("Dimensions") or [[]]:
                    dimensions = [{"Name": key, "Value": str(document[key])} for key in dimension_set]
                    points = [_datum(metric["Name"], float(document[metric["Name"]]), metric.get("Unit", "None"),
                                     dimensions, at)
                              for metric in directive["Metrics"] if metric["Name"] in document]
                    found.append((directive["Namespace"], points))
        except (KeyError, TypeError, ValueError):  # as on AWS: a malformed document is only a log line
            continue
    return found


def publish(account: str, region: str, function: str, logs: str, duration_ms: float | None, error: bool,
            throttled: bool) -> None:
    try:
        backend = _backend(account, region)
        backend.put_metric_data("AWS/Lambda", invocation_metrics(function, duration_ms, error, throttled))
        for namespace, points in embedded_metrics(logs):
            if points:
                backend.put_metric_data(namespace, points)
    except Exception:  # metrics are a convenience; never fail an invocation over them
        log.exception("could not record the metrics of %s", function)
