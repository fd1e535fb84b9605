"""The pipeline state machine, rendered from the ASL template in manifests/stepfunctions/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radstream.aws import error_code, make_arn
from radstream.aws.propagation import retry_while_role_propagates
from radstream.aws.tags import from_list, missing, to_list
from radstream.templating import substitute

# Placeholder in the ASL -> the Lambda (radstream.names.LAMBDA_FUNCTIONS) it stands for.
FUNCTION_PLACEHOLDERS = {
    "ValidateMetadataArn": "validate_metadata",
    "PrepareTensorsArn": "prepare_tensors",
    "InvokeInferenceArn": "invoke_inference",
    "StoreResultsArn": "store_results",
    "SendTelemetryArn": "send_telemetry",
    "StoreFailureArn": "store_failure",
}


def render_definition(template: Path, function_arns: dict[str, str]) -> dict[str, Any]:
    """The ASL with each ${...Arn} replaced by the ARN of its function (keyed by function name)."""
    values = {placeholder: function_arns[fn] for placeholder, fn in FUNCTION_PLACEHOLDERS.items()}
    return json.loads(substitute(template.read_text(), values))


# A late sidecar is looked for again after 2, 4, 8, 16, 16... s: never more than 16 s after it lands.
SIDECAR_FIRST_WAIT_S = 2
SIDECAR_LONGEST_WAIT_S = 16


def with_sidecar_wait(definition: dict[str, Any], wait_seconds: int) -> dict[str, Any]:
    """The definition with ValidateInput's MissingMetadata retrier waiting, in all, at least
    `wait_seconds` (pipeline.sidecar_wait_seconds) and less than one more wait beyond it; 0 removes
    the retrier, so a missing sidecar is quarantined at once."""
    attempts, total = 0, 0
    while total < wait_seconds:
        total += min(SIDECAR_LONGEST_WAIT_S, SIDECAR_FIRST_WAIT_S * 2**attempts)
        attempts += 1
    retriers = definition["States"]["ValidateInput"]["Retry"]
    [index] = [i for i, r in enumerate(retriers) if r["ErrorEquals"] == ["MissingMetadata"]]
    if attempts:
        retriers[index] = {"ErrorEquals": ["MissingMetadata"], "IntervalSeconds": SIDECAR_FIRST_WAIT_S,
                           "MaxAttempts": attempts, "BackoffRate": 2.0, "MaxDelaySeconds": SIDECAR_LONGEST_WAIT_S}
    else:
        del retriers[index]
    return definition


def state_machine_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "states", region, account_id, f"stateMachine:{name}")


def describe_state_machine(sfn: Any, arn: str) -> dict[str, Any] | None:
    try:
        return sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as exc:
        if error_code(exc) == "StateMachineDoesNotExist":
            return None
        raise


def state_machine_drift(sfn: Any, arn: str, definition: dict, role_arn: str, tags: dict[str, str]) -> list[str]:
    found = describe_state_machine(sfn, arn)
    if found is None:
        return ["missing"]
    drift = []
    if json.loads(found["definition"]) != definition or found["roleArn"] != role_arn:
        drift.append("definition")
    current = from_list(sfn.list_tags_for_resource(resourceArn=arn)["tags"], "key", "value")
    if missing(current, tags):
        drift.append("tags")
    return drift


def ensure_state_machine(
    sfn: Any, arn: str, definition: dict, role_arn: str, tags: dict[str, str]
) -> bool:
    """Create or update the STANDARD state machine named by arn."""
    drift = state_machine_drift(sfn, arn, definition, role_arn, tags)
    if "missing" in drift:
        retry_while_role_propagates(lambda: sfn.create_state_machine(
            name=arn.rsplit(":", 1)[1], definition=json.dumps(definition), roleArn=role_arn,
            type="STANDARD", tags=to_list(tags, "key", "value"),
        ))
        return True
    if "definition" in drift:
        retry_while_role_propagates(lambda: sfn.update_state_machine(
            stateMachineArn=arn, definition=json.dumps(definition), roleArn=role_arn))
    if "tags" in drift:
        sfn.tag_resource(resourceArn=arn, tags=to_list(tags, "key", "value"))
    return bool(drift)


def delete_state_machine(sfn: Any, arn: str) -> None:
    """Delete (running executions are stopped by the service); quiet when gone."""
    if describe_state_machine(sfn, arn) is None:
        return
    try:
        sfn.delete_state_machine(stateMachineArn=arn)
    except Exception as exc:
        if error_code(exc) != "StateMachineDoesNotExist":
            raise


def execution_ended(sfn: Any, execution_arn: str) -> dict[str, Any] | None:
    """The execution's description once it is no longer RUNNING, None while it is."""
    described = sfn.describe_execution(executionArn=execution_arn)
    return None if described["status"] == "RUNNING" else described
