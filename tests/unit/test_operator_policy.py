"""The operator policy (manifests/iam/operator.json) and the hook that keeps it true: which IAM action
authorises each AWS call, IAM's action matching, and a call the policy does not allow failing before
it is sent from the operator's Context session."""

from __future__ import annotations

import json

import pytest

from radstream.aws import operator_policy as op

LONGEST = {"deployment": "a" * 24, "account": "123456789012", "region": "ap-southeast-2", "partition": "aws-us-gov"}


def service_model(service: str):
    import boto3

    return boto3.Session(region_name="us-east-1").client(
        service, aws_access_key_id="x", aws_secret_access_key="x").meta.service_model


@pytest.mark.parametrize(("service", "operation", "action"), [
    ("stepfunctions", "DescribeExecution", "states:DescribeExecution"),
    ("resourcegroupstaggingapi", "GetResources", "tag:GetResources"),
    ("ecr", "PutImage", "ecr:PutImage"),  # signed as "ecr", served from "api.ecr"
    ("s3", "ListObjectsV2", "s3:ListBucket"),
    ("s3", "HeadObject", "s3:GetObject"),
    ("s3", "HeadBucket", "s3:ListBucket"),
    ("s3", "PutBucketNotificationConfiguration", "s3:PutBucketNotification"),
    ("s3", "GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("s3", "PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    ("s3", "ListObjectVersions", "s3:ListBucketVersions"),
    ("s3", "DeleteObjects", "s3:DeleteObject"),
    ("lambda", "Invoke", "lambda:InvokeFunction"),
    ("lambda", "GetFunctionConfiguration", "lambda:GetFunctionConfiguration"),
])
def test_each_call_maps_to_the_iam_action_that_authorises_it(service, operation, action):
    model = service_model(service)
    assert operation in model.operation_names
    assert op.iam_action(op.service_prefix(model), operation) == action


@pytest.mark.parametrize(("pattern", "action", "matches"), [
    ("s3:GetObject", "s3:GetObject", True),
    ("s3:getobject", "S3:GetObject", True),  # IAM compares actions case-insensitively
    ("s3:Get*", "s3:GetBucketPolicy", True),
    ("s3:Get*", "s3:PutObject", False),
    ("iam:*Role", "iam:PassRole", True),
    ("ec2:Describe?pcs", "ec2:DescribeVpcs", True),
    ("s3:Get", "s3:GetObject", False),  # the whole action, not a prefix
    ("s3:Get.bject", "s3:GetObject", False),  # a dot is a dot, not a regex
])
def test_action_matching_follows_iam_wildcards(pattern, action, matches):
    assert op.action_matches(pattern, action) is matches


def test_allow_notaction_and_deny_decide_as_iam_does():
    document = {"Statement": [
        {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}
    assert op.allows(document, "s3:GetObject")
    assert op.allows(document, "iam:GetRole")
    assert not op.allows(document, "iam:CreateRole")
    assert not op.allows(document, "s3:DeleteBucket")  # an explicit Deny beats the Allow
    assert op.allows(document, "s3:PutObject")  # a conditional Deny does not always apply


def rendered_operator_policies(deployment: str, account: str, region: str, partition: str) -> list[dict]:
    from radstream.documents import operator_policies
    from radstream.names import Names

    return list(operator_policies(Names(deployment, account, region, partition)).values())


def test_the_operator_policies_render_and_each_fits_a_managed_policy():
    documents = rendered_operator_policies(**LONGEST)
    # IAM refuses a managed policy over 6,144 characters, whitespace not counted.
    assert [len(json.dumps(d, separators=(",", ":"))) <= 6144 for d in documents] == [True] * len(op.POLICY_NAMES)
    assert "${" not in json.dumps(documents)
    assert op.policy_actions(op.merged(documents)) == op.policy_actions(op.operator_policy())


def test_the_read_only_policy_only_reads():
    read = op.operator_documents()[op.POLICY_NAMES.index("operator-read.json")]
    verbs = ("Describe", "List", "Get", "BatchGet", "Search")
    assert [a for a in op.policy_actions(read) if not a.split(":")[1].startswith(verbs)] == []


def test_pass_role_and_service_linked_roles_are_limited_by_condition():
    statements = op.merged(rendered_operator_policies("rs-op", "123456789012", "us-east-1", "aws"))["Statement"]
    by_action = {s["Action"]: s for s in statements if isinstance(s["Action"], str)}
    passing = by_action["iam:PassRole"]
    assert passing["Resource"] == "arn:aws:iam::123456789012:role/rs-op-*-role"
    assert set(passing["Condition"]["StringEquals"]["iam:PassedToService"]) == {
        "lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com", "firehose.amazonaws.com",
        "glue.amazonaws.com", "eks.amazonaws.com"}
    linked = by_action["iam:CreateServiceLinkedRole"]
    assert set(linked["Condition"]["StringEquals"]["iam:AWSServiceName"]) == {
        "eks.amazonaws.com", "eks-nodegroup.amazonaws.com", "elasticloadbalancing.amazonaws.com",
        "autoscaling.amazonaws.com", "guardduty.amazonaws.com"}
    assert linked["Resource"] == "arn:aws:iam::123456789012:role/aws-service-role/*"

    # On "*" only reads, and the writes that have no resource type: CloudWatch Logs' resource
    # policies, GuardDuty's detector (security.guardduty) before it exists, and the dead-letter
    # queue's event source mapping (held to the deployment's functions by lambda:FunctionArn).
    unscoped = [a for s in statements if s["Resource"] == "*" for a in op._listed(s["Action"])]
    assert not [a for a in unscoped if "*" in a]
    assert {a for a in unscoped if not a.split(":")[1].startswith(("Describe", "List", "Get"))} == {
        "logs:PutResourcePolicy", "logs:DeleteResourcePolicy", "guardduty:CreateDetector",
        "lambda:CreateEventSourceMapping"}


def test_every_action_is_named_without_wildcards():
    # doctor asks the policy simulator about each action by name, so each must be one
    assert not [a for a in op.policy_actions(op.operator_policy()) if "*" in a or "?" in a]


@pytest.fixture
def aws_context(tmp_path, monkeypatch):
    """An aws-target Context whose calls go to an address nothing listens on: a call the hook lets
    through fails to connect, one it refuses never gets that far."""
    from radstream import config
    from radstream.context import Context
    from radstream.state import State

    (tmp_path / "radstream.yaml").write_text("target: aws\ndeployment: rs-op\naws:\n  endpoint_url: http://127.0.0.1:9\n")
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, "rs-op", "aws"))


def unreachable(call):
    from botocore.exceptions import EndpointConnectionError

    with pytest.raises(EndpointConnectionError):
        call()


def test_the_context_refuses_a_call_the_operator_policy_does_not_allow(aws_context, monkeypatch, tmp_path):
    monkeypatch.setenv(op.CHECK_VARIABLE, "1")
    log = tmp_path / "calls.log"
    monkeypatch.setenv(op.LOG_VARIABLE, str(log))
    with pytest.raises(op.UncoveredAction, match=r"sns:ListTopics \(for sns ListTopics\)"):
        aws_context.client("sns").list_topics()
    from botocore.config import Config

    kinesis = aws_context.boto_session.client("kinesis", endpoint_url=aws_context.aws_endpoint,
                                              config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    unreachable(lambda: kinesis.describe_stream_summary(StreamName="rs-op-telemetry"))
    assert log.read_text().splitlines() == [
        "sns:ListTopics sns.ListTopics", "kinesis:DescribeStreamSummary kinesis.DescribeStreamSummary"]


def test_without_the_variable_nothing_is_checked(aws_context, monkeypatch):
    monkeypatch.delenv(op.CHECK_VARIABLE, raising=False)
    monkeypatch.delenv(op.LOG_VARIABLE, raising=False)
    from botocore.config import Config

    sqs = aws_context.boto_session.client("sqs", endpoint_url=aws_context.aws_endpoint,
                                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    unreachable(sqs.list_queues)
