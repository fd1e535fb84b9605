"""EventBridge delivery in the sandbox: S3 "Object Created" events and PutEvents reach Step
Functions targets, with the target's input shaping applied."""

from __future__ import annotations

import json

import pytest

from radstream.sandbox.eventbridge import render_template, target_input
from tests.integration.sandbox_fixtures import client, create_function, sandbox, wait_for, wait_for_execution  # noqa: F401

pytestmark = pytest.mark.slow

SFN_ROLE = "arn:aws:iam::123456789012:role/sfn"
EVENTS_ROLE = "arn:aws:iam::123456789012:role/events"

# Reads the uploaded object through the sandbox and records what it saw.
PROCESS_UPLOAD = """
import json, boto3
def handler(event, context):
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read()
    result_key = "results/" + event["key"].rsplit("/", 1)[-1] + ".json"
    s3.put_object(Bucket=event["bucket"], Key=result_key, Body=json.dumps({"bytes": len(body)}).encode())
    return {"result": result_key}
"""


def _machine(sfn, name: str, definition: dict) -> str:
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=SFN_ROLE)["stateMachineArn"]


def _executions(sfn, arn: str) -> list[dict]:
    # Delivery happens inside the PutObject/PutEvents request, so executions are listed on return.
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def test_an_upload_starts_an_execution_that_runs_the_uploaded_handler(sandbox):  # noqa: F811
    s3, events, sfn = client(sandbox, "s3"), client(sandbox, "events"), client(sandbox, "stepfunctions")
    function_arn = create_function(client(sandbox, "lambda"), "process-upload", {"handler.py": PROCESS_UPLOAD}, handler="handler.handler")
    machine = _machine(sfn, "on-upload", {
        "StartAt": "Process",
        "States": {"Process": {
            "Type": "Task",
            "Resource": function_arn,
            "Parameters": {"bucket.$": "$.detail.bucket.name", "key.$": "$.detail.object.key"},
            "End": True,
        }},
    })
    s3.create_bucket(Bucket="uploads")
    s3.put_bucket_notification_configuration(Bucket="uploads", NotificationConfiguration={"EventBridgeConfiguration": {}})
    events.put_rule(Name="uploads-start-pipeline", EventPattern=json.dumps({
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["uploads"]}, "object": {"key": [{"prefix": "incoming/"}]}},
    }))
    events.put_targets(Rule="uploads-start-pipeline", Targets=[{"Id": "pipeline", "Arn": machine, "RoleArn": EVENTS_ROLE}])

    s3.put_object(Bucket="uploads", Key="elsewhere/ignored.txt", Body=b"not for the pipeline")
    assert _executions(sfn, machine) == []

    s3.put_object(Bucket="uploads", Key="incoming/TEST-001.jpg", Body=b"x" * 1234)
    [execution] = _executions(sfn, machine)
    described = wait_for_execution(sfn, execution["executionArn"])
    assert described["status"] == "SUCCEEDED", described
    event = json.loads(described["input"])
    assert event["detail-type"] == "Object Created"
    assert event["time"].endswith("Z")
    assert json.loads(described["output"]) == {"result": "results/TEST-001.jpg.json"}
    assert json.loads(s3.get_object(Bucket="uploads", Key="results/TEST-001.jpg.json")["Body"].read()) == {"bytes": 1234}


def test_put_events_with_input_shaping_and_disabled_rules(sandbox):  # noqa: F811
    events, sfn = client(sandbox, "events"), client(sandbox, "stepfunctions")
    machine = _machine(sfn, "echo-input", {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    pattern = json.dumps({"source": ["radstream.test"]})
    events.put_rule(Name="by-path", EventPattern=pattern)
    events.put_targets(Rule="by-path", Targets=[{"Id": "t", "Arn": machine, "InputPath": "$.detail"}])
    events.put_rule(Name="by-transformer", EventPattern=pattern)
    events.put_targets(Rule="by-transformer", Targets=[{"Id": "t", "Arn": machine, "InputTransformer": {
        "InputPathsMap": {"study": "$.detail.study", "scores": "$.detail.scores"},
        "InputTemplate": '{"study": <study>, "scores": <scores>, "note": "study <study> done", "rule": "<aws.events.rule-name>"}',
    }}])
    events.put_rule(Name="switched-off", EventPattern=pattern, State="DISABLED")
    events.put_targets(Rule="switched-off", Targets=[{"Id": "t", "Arn": machine, "Input": '{"disabled": true}'}])

    detail = {"study": "S-9", "scores": [0.25, 0.75]}
    events.put_events(Entries=[{"Source": "radstream.test", "DetailType": "Test", "Detail": json.dumps(detail)}])
    inputs = [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in _executions(sfn, machine)]
    assert sorted(inputs, key=len) == sorted(
        [detail, {"study": "S-9", "scores": [0.25, 0.75], "note": "study S-9 done", "rule": "by-transformer"}], key=len
    )


def test_input_template_values_are_json_outside_strings_and_text_inside():
    rendered = render_template('{"a": <v>, "b": "<v> and <o>", "c": <o>, "d": "<unknown>"}', {"v": "x\"y", "o": {"k": 1}})
    assert json.loads(rendered) == {"a": 'x"y', "b": 'x"y and {"k": 1}', "c": {"k": 1}, "d": "<unknown>"}


def test_constant_input_wins_and_default_is_the_whole_event():
    event = {"source": "s", "detail": {"a": 1}}
    assert target_input({"Input": '{"fixed": 1}'}, event, "r", "arn") == '{"fixed": 1}'
    assert json.loads(target_input({}, event, "r", "arn")) == event


def test_lambda_targets_and_execution_status_changes(sandbox):  # noqa: F811
    """A failed execution emits a status change event; a rule sends it to a Lambda that records it."""
    s3, events, sfn = client(sandbox, "s3"), client(sandbox, "events"), client(sandbox, "stepfunctions")
    s3.create_bucket(Bucket="failures")
    recorder = create_function(client(sandbox, "lambda"), "record-failure", {"app.py": """
import json, boto3
def handler(event, context):
    detail = event["detail"]
    boto3.client("s3").put_object(Bucket="failures", Key=detail["name"], Body=json.dumps(detail).encode())
"""})
    machine = _machine(sfn, "always-fails", {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}})
    events.put_rule(Name="failed-executions", EventPattern=json.dumps({
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [machine]},
    }))
    events.put_targets(Rule="failed-executions", Targets=[{"Id": "recorder", "Arn": recorder}])

    sfn.start_execution(stateMachineArn=machine, name="doomed", input='{"study": "S-1"}')
    body = wait_for(lambda: _object_or_none(s3, "failures", "doomed"), timeout=30)
    detail = json.loads(body)
    assert detail["status"] == "FAILED"
    assert (detail["error"], detail["cause"]) == ("Broken", "on purpose")
    assert json.loads(detail["input"]) == {"study": "S-1"}
    assert detail["stopDate"] >= detail["startDate"]


def _object_or_none(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
