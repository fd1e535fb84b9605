"""The sandbox's Lambda runner logs as Lambda does, over real HTTP to the sandbox: a function invoked
before anyone created its log group gets one (untagged, never expiring), each execution environment
writes to one stream named like Lambda's, and every invocation leaves START, what the handler
printed, END and REPORT there. RadStream's ensure_log_group then sees and repairs the drift."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.integration.sandbox_fixtures import client, create_function, sandbox  # noqa: F401

APP = '''
def handler(event, context):
    print("hello from", event["who"])
    return {"group": context.log_group_name, "stream": context.log_stream_name}
'''
STREAM_NAME = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
TAGS = {"radstream:deployment": "rs-logs", "radstream:phase": "0"}


def invoke(lam: Any, name: str, who: str) -> dict[str, Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"who": who}).encode())
    assert "FunctionError" not in response
    return json.loads(response["Payload"].read())


def messages(logs: Any, group: str, stream: str) -> list[str]:
    return [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream,
                                                     startFromHead=True)["events"]]


def test_first_invoke_creates_an_untagged_group_and_one_stream_per_environment(sandbox):  # noqa: F811
    lam, logs = client(sandbox, "lambda"), client(sandbox, "logs")
    create_function(lam, "log-probe", {"app.py": APP})
    group = "/aws/lambda/log-probe"
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []

    first, second = invoke(lam, "log-probe", "the first"), invoke(lam, "log-probe", "the second")

    [found] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert found["logGroupName"] == group and "retentionInDays" not in found  # never expires
    assert logs.list_tags_for_resource(resourceArn=found["arn"].removesuffix(":*")).get("tags", {}) == {}
    # The warm worker is one execution environment: both invocations share its stream, which the
    # handler's context names.
    assert first == second == {"group": group, "stream": first["stream"]}
    assert STREAM_NAME.match(first["stream"])
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]] == [first["stream"]]

    lines = messages(logs, group, first["stream"])
    starts = [i for i, line in enumerate(lines) if line.startswith("START RequestId: ")]
    assert len(starts) == 2 and all(lines[i].endswith(" Version: $LATEST") for i in starts)
    first_run, second_run = lines[starts[0]:starts[1]], lines[starts[1]:]
    for run, who in ((first_run, "the first"), (second_run, "the second")):
        request_id = run[0].split()[2]
        assert f"hello from {who}" in run
        assert run[-2] == f"END RequestId: {request_id}"
        report = run[-1].split("\t")
        assert report[0] == f"REPORT RequestId: {request_id}"
        assert {field.split(":")[0] for field in report[1:]} >= {"Duration", "Billed Duration", "Memory Size",
                                                                "Max Memory Used"}
    # Only a cold start reports its init.
    assert "Init Duration" in first_run[-1] and "Init Duration" not in second_run[-1]


def test_ensure_log_group_repairs_the_group_lambda_created(sandbox):  # noqa: F811
    from radstream.aws.events import ensure_log_group, log_group_drift

    lam, logs = client(sandbox, "lambda"), client(sandbox, "logs")
    create_function(lam, "log-repair", {"app.py": APP})
    invoke(lam, "log-repair", "before radstream")
    group = "/aws/lambda/log-repair"

    assert log_group_drift(logs, group, TAGS, 14) == ["retention", "tags"]
    assert ensure_log_group(logs, group, TAGS, 14) is True
    assert log_group_drift(logs, group, TAGS, 14) == []
    assert ensure_log_group(logs, group, TAGS, 14) is False

    # The repaired group keeps what was logged, and the function keeps writing to it.
    invoke(lam, "log-repair", "after radstream")
    [found] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert found["retentionInDays"] == 14
    text = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
    assert "hello from before radstream" in text and "hello from after radstream" in text
