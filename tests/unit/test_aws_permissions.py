"""What doctor asks IAM's policy simulator: the caller's IAM principal, and one request per Allow
statement with its own resources and each value its condition accepts."""

from __future__ import annotations

from radstream.aws.permissions import principal_arn, simulations


def test_a_role_session_is_simulated_as_its_role_and_a_user_as_itself():
    assert principal_arn("arn:aws:sts::123456789012:assumed-role/ci-deployer/pipeline-42") == \
        "arn:aws:iam::123456789012:role/ci-deployer"
    assert principal_arn("arn:aws-us-gov:sts::123456789012:assumed-role/ops/s") == \
        "arn:aws-us-gov:iam::123456789012:role/ops"
    assert principal_arn("arn:aws:iam::123456789012:user/ci/alice") == "arn:aws:iam::123456789012:user/ci/alice"


def test_each_allow_statement_is_simulated_on_its_resources_with_each_condition_value():
    document = {"Statement": [
        {"Effect": "Allow", "Action": ["ec2:DescribeVpcs"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/rs-*-role",
         "Condition": {"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "eks.amazonaws.com"]}}},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
    ]}

    def entry(value):
        return [{"ContextKeyName": "iam:PassedToService", "ContextKeyValues": [value], "ContextKeyType": "string"}]

    assert simulations(document) == [
        {"ActionNames": ["ec2:DescribeVpcs"]},  # "*": no ResourceArns, the simulator's default
        {"ActionNames": ["iam:PassRole"], "ResourceArns": ["arn:aws:iam::1:role/rs-*-role"],
         "ContextEntries": entry("lambda.amazonaws.com")},
        {"ActionNames": ["iam:PassRole"], "ResourceArns": ["arn:aws:iam::1:role/rs-*-role"],
         "ContextEntries": entry("eks.amazonaws.com")},
    ]
