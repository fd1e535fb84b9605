"""The Athena workgroup: queries over the telemetry table, results kept in our own bucket; and
running one query in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from radstream.aws import error_code, make_arn
from radstream.aws.tags import from_list, missing, to_list
from radstream.errors import RadstreamError, WaitTimeout


def workgroup_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "athena", region, account_id, f"workgroup/{name}")


def _configuration(output_location: str) -> dict[str, Any]:
    return {
        "ResultConfiguration": {
            "OutputLocation": output_location,
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        },
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
    }


def get_workgroup(athena: Any, name: str) -> dict[str, Any] | None:
    try:
        # moto answers an unknown workgroup with an empty document
        return athena.get_work_group(WorkGroup=name).get("WorkGroup")
    except Exception as exc:
        if error_code(exc) != "InvalidRequestException":  # Athena's answer for an unknown workgroup
            raise
        return None


def workgroup_drift(athena: Any, name: str, arn: str, output_location: str, tags: dict[str, str]) -> list[str]:
    group = get_workgroup(athena, name)
    if group is None:
        return ["missing"]
    wanted = _configuration(output_location)
    config = group.get("Configuration", {})
    drift = []
    if group.get("State") != "ENABLED" or {k: config.get(k) for k in wanted} != wanted:
        drift.append("configuration")
    if missing(from_list(athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])), tags):
        drift.append("tags")
    return drift


def ensure_workgroup(athena: Any, name: str, arn: str, output_location: str, tags: dict[str, str]) -> bool:
    """Create the workgroup; a drifted configuration is repaired by re-creating it (the workgroup
    holds no data of ours, and moto does not implement UpdateWorkGroup)."""
    drift = workgroup_drift(athena, name, arn, output_location, tags)
    if "configuration" in drift:
        delete_workgroup(athena, name)
    if "missing" in drift or "configuration" in drift:
        athena.create_work_group(
            Name=name, Description="RadStream telemetry analytics",
            Configuration=_configuration(output_location), Tags=to_list(tags),
        )
    elif "tags" in drift:
        athena.tag_resource(ResourceARN=arn, Tags=to_list(tags))
    return bool(drift)


def delete_workgroup(athena: Any, name: str) -> None:
    """Delete the workgroup and its saved queries; quiet when gone."""
    if get_workgroup(athena, name) is None:
        return
    try:
        athena.delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)
    except Exception as exc:
        if error_code(exc) != "InvalidRequestException":
            raise


def execute_query(athena: Any, sql: str, *, database: str, workgroup: str, wait: Callable[..., Any],
                  timeout: float) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Submit in the workgroup (which fixes where results go), `wait(description, predicate,
    timeout, interval=)` until it succeeds, read every GetQueryResults page. Returns (query id,
    its QueryExecution, the pages). A failed or cancelled query raises RadstreamError; one still
    running when the wait times out is stopped before the timeout propagates."""
    query_id = athena.start_query_execution(
        QueryString=sql, QueryExecutionContext={"Database": database}, WorkGroup=workgroup
    )["QueryExecutionId"]

    def finished() -> dict[str, Any] | None:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        state = execution["Status"]["State"]
        if state in ("FAILED", "CANCELLED"):
            reason = execution["Status"].get("StateChangeReason", "no reason given")
            raise RadstreamError(f"Athena query {query_id} {state.lower()}: {reason}",
                                 hint=f"it ran in workgroup {workgroup}, database {database}")
        return execution if state == "SUCCEEDED" else None

    try:
        execution = wait(f"Athena query {query_id}", finished, timeout, interval=1.0)
    except WaitTimeout:
        athena.stop_query_execution(QueryExecutionId=query_id)  # a forgotten query still scans (and bills)
        raise
    pages = list(athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id))
    return query_id, execution, pages
