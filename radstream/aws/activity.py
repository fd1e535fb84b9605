"""What the pipeline did over a recent window, read cheaply for `radstream watch`: its executions
(Step Functions' list, newest first, read back only to the window's start) and CloudWatch sums
(per dimension value, e.g. failures by reason from the pipeline's EMF metrics; Lambda errors). Read-only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

MAX_EXECUTIONS = 5000  # a bound on one refresh's reads on a busy deployment


def executions_since(sfn: Any, state_machine_arn: str, since: datetime) -> list[dict[str, Any]]:
    """{executionArn, status, startDate, stopDate} of the executions started at or after `since`."""
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        for execution in page["executions"]:
            if execution["startDate"] < since or len(found) >= MAX_EXECUTIONS:
                return found
            found.append({key: execution.get(key) for key in ("executionArn", "status", "startDate", "stopDate")})
    return found


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of one execution, oldest first."""
    return [event for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
            for event in page["events"]]


def _sums(cw: Any, metrics: list[tuple[str, str, dict[str, str]]], since: datetime, until: datetime) -> list[float]:
    """The Sum of each (namespace, metric, dimensions) over [since, until]; 0 without datapoints."""
    if not metrics:
        return []
    period = max(60, int((until - since).total_seconds()) // 60 * 60)  # one datapoint for the window
    queries = [{"Id": f"m{i}", "ReturnData": True,
                "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": name,
                                          "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
                               "Period": period, "Stat": "Sum"}}
               for i, (namespace, name, dimensions) in enumerate(metrics)]
    values = {r["Id"]: sum(r.get("Values") or []) for r in
              cw.get_metric_data(MetricDataQueries=queries, StartTime=since, EndTime=until)["MetricDataResults"]}
    return [values.get(f"m{i}", 0.0) for i in range(len(metrics))]


def sums_by(cw: Any, namespace: str, metric: str, fixed: dict[str, str], by: str, since: datetime,
            until: datetime) -> dict[str, int]:
    """A metric's Sum over the window per value of the dimension `by` (the other dimensions fixed),
    for the values that have a datapoint in it."""
    values = sorted({d["Value"] for page in cw.get_paginator("list_metrics").paginate(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in fixed.items()])
        for found in page["Metrics"] for d in found["Dimensions"] if d["Name"] == by})
    sums = _sums(cw, [(namespace, metric, {**fixed, by: value}) for value in values], since, until)
    return {value: int(total) for value, total in zip(values, sums, strict=True) if total}


def lambda_errors(cw: Any, functions: Iterable[str], since: datetime, until: datetime) -> dict[str, int]:
    names = list(functions)
    sums = _sums(cw, [("AWS/Lambda", "Errors", {"FunctionName": f}) for f in names], since, until)
    return {name: int(total) for name, total in zip(names, sums, strict=True)}
