"""Connecting the pipeline to the inference endpoint and following one study through it: a Lambda's
environment variables, S3 objects, and the Step Functions execution an upload started."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from radstream.aws import error_code
from radstream.aws.s3 import read_object


def function_environment(lam: Any, name: str) -> dict[str, str]:
    return lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})


def set_function_environment(lam: Any, name: str, changes: dict[str, str | None]) -> bool:
    """Set (or, for None, remove) these variables and keep every other; False when nothing changes."""
    current = function_environment(lam, name)
    wanted = {k: v for k, v in {**current, **changes}.items() if v is not None}
    if wanted == current:
        return False
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": wanted})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    return True


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return False
        raise
    return True


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(read_object(s3, bucket, key))
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def find_execution(sfn: Any, state_machine_arn: str, since: datetime,
                   matches: Callable[[dict[str, Any]], bool]) -> str | None:
    """The ARN of the newest execution started at or after `since` whose input `matches`."""
    listed = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=50)["executions"]
    for execution in sorted(listed, key=lambda e: e["startDate"], reverse=True):
        if execution["startDate"] < since:
            continue
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if matches(json.loads(described.get("input") or "{}")):
            return execution["executionArn"]
    return None
