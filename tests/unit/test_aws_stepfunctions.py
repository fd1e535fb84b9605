import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from radstream.aws.stepfunctions import (
    delete_state_machine,
    ensure_state_machine,
    execution_ended,
    render_definition,
    state_machine_arn,
    state_machine_drift,
)
from radstream.names import LAMBDA_FUNCTIONS
from tests.support.aws import record_mutations

ASL = Path(__file__).resolve().parents[2] / "manifests" / "stepfunctions" / "pipeline.asl.json"
REGION, ACCOUNT = "us-east-1", "123456789012"
ARNS = {fn: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:t1-{fn.replace('_', '-')}" for fn in LAMBDA_FUNCTIONS}
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/t1-sfn-role"


def test_pipeline_shape_retries_and_catches():
    definition = render_definition(ASL, ARNS)
    states = definition["States"]
    path, name = [], definition["StartAt"]
    while name:
        path.append(name)
        name = states[name].get("Next")
    assert path == ["ValidateInput", "PrepareImage", "InvokeInference", "StoreResults", "SendTelemetry"]
    for name, state in states.items():
        if state["Type"] in ("Fail", "Succeed"):
            continue
        assert state["Catch"], name
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, name
        assert all(r["BackoffRate"] > 1 for r in state["Retry"]), name
    inference_retry = {e for r in states["InvokeInference"]["Retry"] for e in r["ErrorEquals"]}
    assert "InferenceUnavailable" in inference_retry
    for name in path:
        assert states[name]["Catch"][0]["Next"] == "StoreFailure"
    assert states["StoreFailure"]["Next"] == "PipelineFailed"
    assert states["PipelineFailed"]["Type"] == "Fail"
    assert sorted(s["Resource"] for s in states.values() if s["Type"] == "Task") == sorted(ARNS.values())


def test_template_needs_every_function():
    with pytest.raises(KeyError):
        render_definition(ASL, {k: v for k, v in ARNS.items() if k != "store_failure"})


@pytest.fixture
def sfn():
    with mock_aws():
        yield boto3.client("stepfunctions", region_name=REGION)


def test_create_no_op_update_and_delete(sfn):
    arn = state_machine_arn(REGION, ACCOUNT, "t1-pipeline")
    definition = render_definition(ASL, ARNS)
    assert state_machine_drift(sfn, arn, definition, ROLE, TAGS) == ["missing"]
    assert ensure_state_machine(sfn, arn, definition, ROLE, TAGS) is True
    assert sfn.describe_state_machine(stateMachineArn=arn)["type"] == "STANDARD"

    seen = record_mutations(sfn)
    assert ensure_state_machine(sfn, arn, definition, ROLE, TAGS) is False
    assert seen == []

    # Someone edits the definition in the console and drops a tag.
    edited = json.loads(json.dumps(definition))
    edited["States"]["ValidateInput"]["Retry"] = []
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(edited))
    sfn.untag_resource(resourceArn=arn, tagKeys=["radstream:phase"])
    assert state_machine_drift(sfn, arn, definition, ROLE, TAGS) == ["definition", "tags"]
    assert ensure_state_machine(sfn, arn, definition, ROLE, TAGS) is True
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == definition
    assert state_machine_drift(sfn, arn, definition, ROLE, TAGS) == []

    delete_state_machine(sfn, arn)
    assert state_machine_drift(sfn, arn, definition, ROLE, TAGS) == ["missing"]
    delete_state_machine(sfn, arn)


def test_an_execution_has_ended_once_it_is_no_longer_running(sfn):
    arn = state_machine_arn(REGION, ACCOUNT, "t1-pipeline")
    ensure_state_machine(sfn, arn, render_definition(ASL, ARNS), ROLE, TAGS)
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert execution_ended(sfn, execution) is None
    sfn.stop_execution(executionArn=execution, error="Test", cause="stopped by the test")
    ended = execution_ended(sfn, execution)
    assert ended["status"] == "ABORTED" and ended["executionArn"] == execution
