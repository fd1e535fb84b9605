import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from radstream.aws.iam import (
    INLINE_POLICY,
    MANAGED_POLICIES,
    ROLE_PURPOSES,
    UNSCOPABLE_ACTIONS,
    delete_role,
    ensure_role,
    managed_policy_arns,
    role_documents,
    role_drift,
)
from radstream.names import Names
from tests.support.aws import record_mutations

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "iam"
NAMES = Names("t1", "123456789012", "eu-west-1")
TAGS = NAMES.tags(0)
# Shared, fixed-name ARNs AWS itself defines: the account's Glue catalog and the log group every
# crawler writes to. Our policies may name them; nothing else outside the deployment.
SHARED_ARNS = {
    "arn:aws:glue:eu-west-1:123456789012:catalog",
    "arn:aws:logs:eu-west-1:123456789012:log-group:/aws-glue/crawlers",
    # Lambda's VPC ENIs: EC2 IDs are random; the subnets and groups are bound by the deployment tag.
    "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
    "arn:aws:ec2:eu-west-1:123456789012:subnet/*",
    "arn:aws:ec2:eu-west-1:123456789012:security-group/*",
}


def variables() -> dict[str, str]:
    from radstream.documents import template_variables

    return template_variables(NAMES)


def as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.fixture
def iam(monkeypatch):
    # moto only knows AWS managed policies (the EKS ones) when asked to load them.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with mock_aws():
        yield boto3.client("iam", region_name="us-east-1")


@pytest.mark.parametrize("purpose", ROLE_PURPOSES)
def test_policies_are_least_privilege_and_scoped_to_the_deployment(purpose):
    trust, policy = role_documents(MANIFESTS, purpose, variables())
    assert trust["Statement"][0]["Action"] == "sts:AssumeRole"
    assert set(trust["Statement"][0]["Principal"]) == {"Service"}
    if policy is None:
        assert purpose in MANAGED_POLICIES  # only EKS roles may rely on managed policies alone
        return
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), statement
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= UNSCOPABLE_ACTIONS, statement
                continue
            assert ":123456789012:" in resource or resource.startswith("arn:aws:s3:::"), resource
            assert resource in SHARED_ARNS or "t1-" in resource or "t1_" in resource, resource
            assert "eu-west-1" in resource or resource.startswith("arn:aws:s3:::"), resource


def test_every_manifest_placeholder_is_known():
    for path in MANIFESTS.glob("*.json"):
        from radstream.aws.iam import render_document

        rendered = render_document(path, variables())  # raises KeyError on an unknown ${...}
        assert "${" not in json.dumps(rendered)


def test_lambda_role_create_no_op_and_repair(iam):
    name = NAMES.role("lambda")
    trust, policy = role_documents(MANIFESTS, "lambda", variables())
    assert role_drift(iam, name, trust, policy, [], TAGS) == ["missing"]
    assert ensure_role(iam, name, trust, policy, [], TAGS) is True
    assert role_drift(iam, name, trust, policy, [], TAGS) == []

    seen = record_mutations(iam)
    assert ensure_role(iam, name, trust, policy, [], TAGS) is False
    assert seen == []

    # Drift: a broader policy pasted in, an extra inline policy, a managed policy attached by hand.
    iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    iam.put_role_policy(RoleName=name, PolicyName="debug", PolicyDocument=json.dumps(policy))
    iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert role_drift(iam, name, trust, policy, [], TAGS) == ["policy", "managed-policies"]
    assert ensure_role(iam, name, trust, policy, [], TAGS) is True
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [INLINE_POLICY]
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    assert role_drift(iam, name, trust, policy, [], TAGS) == []


def test_eks_roles_get_their_managed_policies_and_trust_is_repaired(iam):
    name = NAMES.role("eks-nodes")
    trust, policy = role_documents(MANIFESTS, "eks-nodes", variables())
    managed = managed_policy_arns("eks-nodes")
    ensure_role(iam, name, trust, policy, managed, TAGS)
    attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    assert attached == set(managed)
    wrong_trust = {**trust, "Statement": [{**trust["Statement"][0], "Principal": {"Service": "lambda.amazonaws.com"}}]}
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wrong_trust))
    iam.untag_role(RoleName=name, TagKeys=["radstream:phase"])
    assert role_drift(iam, name, trust, policy, managed, TAGS) == ["trust", "tags"]
    ensure_role(iam, name, trust, policy, managed, TAGS)
    assert role_drift(iam, name, trust, policy, managed, TAGS) == []


def test_delete_is_complete_and_quiet_when_gone(iam):
    name = NAMES.role("eks-cluster")
    trust, policy = role_documents(MANIFESTS, "eks-cluster", variables())
    ensure_role(iam, name, trust, policy, managed_policy_arns("eks-cluster"), TAGS)
    delete_role(iam, name)
    assert role_drift(iam, name, trust, policy, [], TAGS) == ["missing"]
    delete_role(iam, name)
