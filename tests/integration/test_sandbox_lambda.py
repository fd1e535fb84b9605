"""The sandbox runs the uploaded Lambda zip: direct invokes, errors, timeouts, layers, code
updates, and Step Functions tasks whose Retry/Catch see the handler's error names."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.integration.sandbox_fixtures import client, create_function, sandbox, wait_for, wait_for_execution, zip_of  # noqa: F401

pytestmark = pytest.mark.slow

ECHO = """
import os
def handler(event, context):
    return {"event": event, "colour": os.environ.get("COLOUR"), "function": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis()}
"""

WRITES_S3 = """
import boto3
def handler(event, context):
    boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=b"written by the function")
    return {"written": event["key"]}
"""

RAISES = """
class PermanentError(Exception):
    pass
def handler(event, context):
    print("about to fail")
    raise PermanentError("the study is unreadable")
"""

# Fails the first `failures` attempts of each execution, so a Retry can be observed.
FLAKY = """
import pathlib
class TransientError(Exception):
    pass
def handler(event, context):
    marker = pathlib.Path("/tmp") / ("radstream-flaky-" + event["execution"].rsplit(":", 1)[-1])
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts <= event["failures"]:
        raise TransientError(f"attempt {attempts}")
    return {"attempts": attempts}
"""

# Holds its environment until the test releases it, saying first that it has started.
HOLDS = """
import os, pathlib, time
def handler(event, context):
    if "gate" not in event:
        return {"held": False}
    gate = pathlib.Path(event["gate"])
    (gate / context.aws_request_id).touch()
    while not (gate / "release").exists():
        time.sleep(0.05)
    return {"held": True}
"""

SLEEPS = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


@pytest.fixture(scope="module")
def functions(sandbox):  # noqa: F811
    lam = client(sandbox, "lambda")
    return {
        "echo": create_function(lam, "echo", {"app.py": ECHO}, environment={"COLOUR": "teal"}),
        "writes": create_function(lam, "writes-s3", {"app.py": WRITES_S3}),
        "raises": create_function(lam, "raises", {"app.py": RAISES}),
        "flaky": create_function(lam, "flaky", {"app.py": FLAKY}),
        "sleeps": create_function(lam, "sleeps", {"app.py": SLEEPS}, timeout=1),
    }


def invoke(sandbox, name: str, event: dict) -> tuple[dict, dict]:  # noqa: F811
    response = client(sandbox, "lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response, json.loads(response["Payload"].read())


def test_direct_invoke_runs_the_zip_with_its_environment(sandbox, functions):  # noqa: F811
    started = time.perf_counter()
    response, payload = invoke(sandbox, "echo", {"study": "TEST-001"})
    cold = time.perf_counter() - started
    assert "FunctionError" not in response
    assert payload["event"] == {"study": "TEST-001"}
    assert payload["colour"] == "teal"
    assert payload["function"] == "echo"
    assert 0 < payload["remaining_ms"] <= 3000

    warm = []
    for _ in range(10):
        started = time.perf_counter()
        invoke(sandbox, "echo", {})
        warm.append(time.perf_counter() - started)
    warm.sort()
    print(f"\nlambda direct invoke: cold {cold * 1000:.0f} ms, warm p50 {warm[5] * 1000:.1f} ms")


def test_boto3_inside_the_function_reaches_the_sandbox(sandbox, functions):  # noqa: F811
    s3 = client(sandbox, "s3")
    s3.create_bucket(Bucket="lambda-writes")
    response, payload = invoke(sandbox, "writes-s3", {"bucket": "lambda-writes", "key": "out/a.txt"})
    assert "FunctionError" not in response, payload
    assert s3.get_object(Bucket="lambda-writes", Key="out/a.txt")["Body"].read() == b"written by the function"


def test_an_exception_comes_back_as_a_function_error_with_its_type(sandbox, functions):  # noqa: F811
    response = client(sandbox, "lambda").invoke(FunctionName="raises", Payload=b"{}", LogType="Tail")
    payload = json.loads(response["Payload"].read())
    assert response["FunctionError"]
    assert payload["errorType"] == "PermanentError"
    assert payload["errorMessage"] == "the study is unreadable"
    assert any("raise PermanentError" in line for line in payload["stackTrace"])
    assert "about to fail" in base64.b64decode(response["LogResult"]).decode()


def test_a_function_past_its_timeout_is_killed_and_the_next_call_works(sandbox, functions):  # noqa: F811
    response, payload = invoke(sandbox, "sleeps", {"sleep": 30})
    assert response["FunctionError"]
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "timed out after 1.00 seconds" in payload["errorMessage"]
    response, payload = invoke(sandbox, "sleeps", {"sleep": 0})
    assert "FunctionError" not in response
    assert payload == {"slept": 0}


def test_a_missing_handler_is_reported_like_lambda(sandbox):  # noqa: F811
    lam = client(sandbox, "lambda")
    create_function(lam, "no-such-module", {"app.py": ECHO}, handler="nothere.handler")
    _, payload = invoke(sandbox, "no-such-module", {})
    assert payload["errorType"] == "Runtime.ImportModuleError"
    create_function(lam, "no-such-function", {"app.py": ECHO}, handler="app.nothere")
    _, payload = invoke(sandbox, "no-such-function", {})
    assert payload["errorType"] == "Runtime.HandlerNotFound"


def test_layers_are_importable_and_updated_code_is_used(sandbox):  # noqa: F811
    lam = client(sandbox, "lambda")
    layer = lam.publish_layer_version(
        LayerName="shared-lib",
        Content={"ZipFile": zip_of({"python/sharedlib.py": "GREETING = 'from the layer'\n"})},
        CompatibleRuntimes=["python3.11"],
    )
    source = "import sharedlib\ndef handler(event, context):\n    return {VERSION: sharedlib.GREETING}\n"
    create_function(lam, "uses-layer", {"app.py": source.replace("VERSION", "'v1'")}, layers=[layer["LayerVersionArn"]])
    assert invoke(sandbox, "uses-layer", {})[1] == {"v1": "from the layer"}
    lam.update_function_code(FunctionName="uses-layer", ZipFile=zip_of({"app.py": source.replace("VERSION", "'v2'")}))
    assert invoke(sandbox, "uses-layer", {})[1] == {"v2": "from the layer"}


def _machine(sandbox, name: str, definition: dict) -> str:  # noqa: F811
    sfn = client(sandbox, "stepfunctions")
    arn = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    return arn


def test_step_functions_retry_and_catch_see_the_handler_error_names(sandbox, functions):  # noqa: F811
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": functions["flaky"], "Payload": {"execution.$": "$$.Execution.Id", "failures": 2}},
                "ResultSelector": {"attempts.$": "$.Payload.attempts"},
                "ResultPath": "$.flaky",
                "Retry": [{"ErrorEquals": ["TransientError"], "IntervalSeconds": 1, "BackoffRate": 1.0, "MaxAttempts": 3}],
                "Next": "TooSlow",
            },
            "TooSlow": {
                "Type": "Task",
                "Resource": functions["sleeps"],
                "Parameters": {"sleep": 30},
                "Catch": [{"ErrorEquals": ["Sandbox.Timedout"], "ResultPath": "$.timeout", "Next": "Broken"}],
                "End": True,
            },
            "Broken": {
                "Type": "Task",
                "Resource": functions["raises"],
                "Retry": [{"ErrorEquals": ["TransientError"], "MaxAttempts": 5}],
                "Catch": [{"ErrorEquals": ["PermanentError"], "ResultPath": "$.failure", "Next": "Recorded"}],
                "ResultPath": "$.broken",
                "Next": "Recorded",
            },
            "Recorded": {"Type": "Succeed"},
        },
    }
    arn = _machine(sandbox, "retry-and-catch", definition)
    sfn = client(sandbox, "stepfunctions")
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"study": "S1"}))["executionArn"]
    result = wait_for_execution(sfn, execution)
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["flaky"] == {"attempts": 3}
    assert output["timeout"]["Error"] == "Sandbox.Timedout"
    assert output["failure"]["Error"] == "PermanentError"
    assert json.loads(output["failure"]["Cause"])["errorMessage"] == "the study is unreadable"


def test_three_task_execution_latency(sandbox, functions):  # noqa: F811
    task = {"Type": "Task", "Resource": functions["echo"], "OutputPath": "$.event"}
    definition = {
        "StartAt": "One",
        "States": {"One": {**task, "Next": "Two"}, "Two": {**task, "Next": "Three"}, "Three": {**task, "End": True}},
    }
    arn = _machine(sandbox, "three-tasks", definition)
    sfn = client(sandbox, "stepfunctions")
    durations = []
    for i in range(5):
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": i}))["executionArn"]
        result = wait_for_execution(sfn, execution)
        assert result["status"] == "SUCCEEDED", result
        assert json.loads(result["output"]) == {"n": i}
        durations.append((result["stopDate"] - result["startDate"]).total_seconds())
    durations.sort()
    print(f"\n3-task execution (server start -> stop dates): p50 {durations[2] * 1000:.0f} ms, max {durations[-1] * 1000:.0f} ms")


def test_an_invoke_over_the_function_concurrency_is_throttled_like_lambda_and_step_functions_names_it(sandbox, tmp_path):  # noqa: F811
    """Lambda never queues a synchronous invoke: over the concurrency it answers 429 at once, and a
    Task on the function's ARN sees Lambda.TooManyRequestsException (moto says "Exception")."""
    from concurrent.futures import ThreadPoolExecutor

    from radstream.sandbox import MAX_WORKERS_PER_FUNCTION

    lam = client(sandbox, "lambda")
    arn = create_function(lam, "holds", {"app.py": HOLDS}, timeout=300)
    definition = {"StartAt": "Held", "States": {"Held": {
        "Type": "Task", "Resource": arn,
        "Catch": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "ResultPath": "$.throttled", "Next": "Done"}],
        "End": True}, "Done": {"Type": "Succeed"}}}
    machine = _machine(sandbox, "throttled", definition)

    def one(event: dict) -> str:
        try:
            response, payload = invoke(sandbox, "holds", event)
            return "served" if "FunctionError" not in response else f"failed: {payload}"
        except lam.exceptions.TooManyRequestsException as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert error.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            return "throttled"

    with ThreadPoolExecutor(MAX_WORKERS_PER_FUNCTION) as holders:
        held = [holders.submit(one, {"gate": str(tmp_path)}) for _ in range(MAX_WORKERS_PER_FUNCTION)]
        try:
            wait_for(lambda: len(list(tmp_path.iterdir())) == MAX_WORKERS_PER_FUNCTION, timeout=120,
                     what="every environment of the function busy")
            refused = one({})
            sfn = client(sandbox, "stepfunctions")
            execution = wait_for_execution(sfn, sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"])
        finally:
            (tmp_path / "release").touch()
        outcomes = [future.result() for future in held]
    assert refused == "throttled"
    assert outcomes == ["served"] * MAX_WORKERS_PER_FUNCTION
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"])["throttled"]["Error"] == "Lambda.TooManyRequestsException"
    assert one({}) == "served"  # capacity freed is capacity again
