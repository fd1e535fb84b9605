"""`radstream doctor` on the aws target checks the caller against manifests/iam/operator.json with
iam:SimulatePrincipalPolicy, here against the sandbox's emulated IAM (aws.endpoint_url): a user
missing a few of the operator's actions is told which, one with all of them (or a role session
with all of them) passes."""

from __future__ import annotations

import json

import pytest

from tests.integration.sandbox_fixtures import ACCOUNT, REGION, client, sandbox  # noqa: F401

DEPLOYMENT = "rs-doc"
WITHHELD = ("iam:PassRole", "eks:CreateNodegroup", "s3:PutBucketPolicy")


def operator_policy() -> dict:
    from radstream.aws.operator_policy import merged
    from radstream.documents import operator_policies
    from radstream.names import Names

    return merged(list(operator_policies(Names(DEPLOYMENT, ACCOUNT, REGION)).values()))


def without(document: dict, actions: tuple[str, ...]) -> dict:
    statements = []
    for statement in document["Statement"]:
        kept = [a for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
                if a not in actions]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**document, "Statement": statements}


def user_with_policy(sandbox, name: str, document: dict) -> dict[str, str]:  # noqa: F811
    """An IAM user with one managed policy (IAM refuses an inline user policy this big) and its key."""
    iam = client(sandbox, "iam")
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=f"{name}-policy", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture
def doctor(sandbox, project, run_cli):  # noqa: F811
    (project / "radstream.yaml").write_text(
        f"target: aws\ndeployment: {DEPLOYMENT}\nregion: {REGION}\naws:\n  endpoint_url: {sandbox['aws_endpoint']}\n")

    def run(credentials: dict[str, str]) -> dict:
        result = run_cli("doctor", "--json", env=credentials)
        checks = {c["name"]: c for c in result.json["checks"]}
        assert checks["AWS credentials"]["ok"], checks["AWS credentials"]
        return checks["permissions"]

    return run


def test_a_user_missing_operator_actions_is_told_which(sandbox, doctor):  # noqa: F811
    check = doctor(user_with_policy(sandbox, "ci-partial", without(operator_policy(), WITHHELD)))
    assert not check["ok"] and check["required"]
    principal, _, named = check["detail"].partition(" may not: ")
    assert principal == f"arn:aws:iam::{ACCOUNT}:user/ci-partial"
    assert sorted(named.split(", ")) == sorted(WITHHELD)
    assert "manifests/iam/operator.json" in check["fix"]


def test_a_user_with_the_operator_policy_passes(sandbox, doctor):  # noqa: F811
    check = doctor(user_with_policy(sandbox, "ci-full", operator_policy()))
    assert check["ok"], check["detail"]


def test_a_role_session_is_checked_as_its_role(sandbox, doctor):  # noqa: F811
    iam = client(sandbox, "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    role = iam.create_role(RoleName="ci-deployer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="ci-deployer", PolicyName="operator",
                        PolicyDocument=json.dumps(without(operator_policy(), ("ecr:PutImage",))))
    session = client(sandbox, "sts").assume_role(RoleArn=role, RoleSessionName="pipeline-42")["Credentials"]
    check = doctor({"AWS_ACCESS_KEY_ID": session["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
                    "AWS_SESSION_TOKEN": session["SessionToken"]})
    assert check["detail"] == f"{role} may not: ecr:PutImage"


def test_the_sandbox_simulates_principal_policies_as_iam_does(sandbox):  # noqa: F811
    from botocore.exceptions import ClientError

    iam = client(sandbox, "iam")
    iam.create_user(UserName="sim")
    iam.put_user_policy(UserName="sim", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::rs-doc-*"},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}]}))
    iam.create_group(GroupName="readers")
    iam.add_user_to_group(GroupName="readers", UserName="sim")
    iam.put_group_policy(GroupName="readers", PolicyName="g", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}))
    user = f"arn:aws:iam::{ACCOUNT}:user/sim"

    def decisions(**request):
        pages = iam.get_paginator("simulate_principal_policy").paginate(PolicySourceArn=user, **request)
        return [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"])
                for page in pages for r in page["EvaluationResults"]]

    bucket = "arn:aws:s3:::rs-doc-images"
    assert decisions(ActionNames=["s3:GetObject", "s3:DeleteBucket", "ec2:DescribeVpcs"], ResourceArns=[bucket]) == [
        ("s3:GetObject", bucket, "allowed"), ("s3:DeleteBucket", bucket, "explicitDeny"),
        ("ec2:DescribeVpcs", bucket, "allowed")]  # the group's policy counts for its members
    # Asked about "*", a statement scoped to resources does not apply; nor does an unmet condition.
    assert decisions(ActionNames=["s3:GetObject"]) == [("s3:GetObject", "*", "implicitDeny")]
    missing = iam.simulate_principal_policy(PolicySourceArn=user, ActionNames=["iam:PassRole"])["EvaluationResults"][0]
    assert (missing["EvalDecision"], missing["MissingContextValues"]) == ("implicitDeny", ["iam:PassedToService"])
    assert decisions(ActionNames=["iam:PassRole"], ContextEntries=[{
        "ContextKeyName": "iam:PassedToService", "ContextKeyValues": ["lambda.amazonaws.com"], "ContextKeyType": "string",
    }]) == [("iam:PassRole", "*", "allowed")]
    # Results come in pages of MaxItems (100 by default) with a Marker.
    many = [f"s3:Action{i}" for i in range(130)]
    first = iam.simulate_principal_policy(PolicySourceArn=user, ActionNames=many)
    assert (len(first["EvaluationResults"]), first["IsTruncated"]) == (100, True)
    assert len(decisions(ActionNames=many)) == 130
    with pytest.raises(ClientError) as caught:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/nobody", ActionNames=["s3:GetObject"])
    assert caught.value.response["Error"]["Code"] == "NoSuchEntity"
