"""The sandbox holds sessions of Lambda roles to their policies, over real HTTP, as AWS does: S3 and
Kinesis calls outside the grant answer AccessDenied, a missing key is a 404 only with s3:ListBucket
on its prefix, a copy needs read on its source, a wrong secret fails the signature. Sessions of other
roles and the static test keys stay unauthenticated."""

from __future__ import annotations

import json

import pytest

from tests.integration.sandbox_fixtures import ACCOUNT, TRUST_POLICY, client, sandbox  # noqa: F401

pytestmark = pytest.mark.slow

BUCKET, STREAM = "enforced-bucket", "enforced-stream"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET}/in/*"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/unlisted/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
     "Condition": {"StringLike": {"s3:prefix": ["in/*"]}}},
    {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{STREAM}"},
]}


def session_of(sandbox, role: str, trust: dict) -> dict:  # noqa: F811
    iam = client(sandbox, "iam")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(POLICY))
    credentials = client(sandbox, "sts").assume_role(RoleArn=arn, RoleSessionName="fn")["Credentials"]
    return {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


def as_session(sandbox, service: str, session: dict):  # noqa: F811
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=sandbox["aws_endpoint"], **session)


@pytest.fixture(scope="module")
def world(sandbox):  # noqa: F811
    s3 = client(sandbox, "s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in ("in/a", "out/b", "unlisted/c"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    for stream in (STREAM, "other-stream"):
        client(sandbox, "kinesis").create_stream(StreamName=stream, ShardCount=1)
    return session_of(sandbox, "enforced-lambda-role", TRUST_POLICY)


def error_of(call) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call()
    return f"{caught.value.response['Error']['Code']}: {caught.value}"


def test_s3_calls_of_a_lambda_session_are_held_to_its_policy(sandbox, world):  # noqa: F811
    s3 = as_session(sandbox, "s3", world)
    assert s3.get_object(Bucket=BUCKET, Key="in/a")["Body"].read() == b"in/a"
    s3.put_object(Bucket=BUCKET, Key="in/new", Body=b"x" * 200_000)
    denied = error_of(lambda: s3.put_object(Bucket=BUCKET, Key="out/new", Body=b"x"))
    assert denied.startswith("AccessDenied") and "assumed-role/enforced-lambda-role/fn" in denied
    assert f'perform: s3:PutObject on resource: "arn:aws:s3:::{BUCKET}/out/new"' in denied
    assert error_of(lambda: s3.get_object(Bucket=BUCKET, Key="out/b")).startswith("AccessDenied")
    s3.list_objects_v2(Bucket=BUCKET, Prefix="in/")
    assert "s3:ListBucket" in error_of(lambda: s3.list_objects_v2(Bucket=BUCKET))


def test_a_missing_key_is_a_404_only_with_list_on_its_prefix(sandbox, world):  # noqa: F811
    s3 = as_session(sandbox, "s3", world)
    assert error_of(lambda: s3.get_object(Bucket=BUCKET, Key="in/missing")).startswith("NoSuchKey")
    assert error_of(lambda: s3.head_object(Bucket=BUCKET, Key="in/missing")).startswith("404")
    denied = error_of(lambda: s3.get_object(Bucket=BUCKET, Key="unlisted/missing"))
    assert denied.startswith("AccessDenied") and "s3:ListBucket" in denied
    assert error_of(lambda: s3.head_object(Bucket=BUCKET, Key="unlisted/missing")).startswith("403")
    assert s3.get_object(Bucket=BUCKET, Key="unlisted/c")["Body"].read() == b"unlisted/c"


def test_a_copy_needs_read_on_its_source(sandbox, world):  # noqa: F811
    s3 = as_session(sandbox, "s3", world)
    s3.copy_object(Bucket=BUCKET, Key="in/copy", CopySource={"Bucket": BUCKET, "Key": "in/a"})
    denied = error_of(lambda: s3.copy_object(Bucket=BUCKET, Key="in/copy", CopySource={"Bucket": BUCKET, "Key": "out/b"}))
    assert denied.startswith("AccessDenied") and "s3:GetObject" in denied
    missing = {"Bucket": BUCKET, "Key": "in/gone"}
    assert error_of(lambda: s3.copy_object(Bucket=BUCKET, Key="in/copy", CopySource=missing)).startswith("NoSuchKey")


def test_kinesis_calls_are_judged_against_the_streams_arn(sandbox, world):  # noqa: F811
    kinesis = as_session(sandbox, "kinesis", world)
    kinesis.put_record(StreamName=STREAM, Data=b"{}", PartitionKey="p")
    denied = error_of(lambda: kinesis.put_record(StreamName="other-stream", Data=b"{}", PartitionKey="p"))
    assert denied.startswith("AccessDeniedException") and "stream/other-stream" in denied
    assert "kinesis:PutRecords" in error_of(
        lambda: kinesis.put_records(StreamName=STREAM, Records=[{"Data": b"{}", "PartitionKey": "p"}]))


def test_a_wrong_secret_fails_the_signature(sandbox, world):  # noqa: F811
    forged = {**world, "aws_secret_access_key": "not-the-secret"}
    assert error_of(lambda: as_session(sandbox, "s3", forged).get_object(Bucket=BUCKET, Key="in/a")).startswith(
        "SignatureDoesNotMatch")


def test_other_roles_sessions_and_the_static_keys_stay_unauthenticated(sandbox, world):  # noqa: F811
    not_lambda = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    other = as_session(sandbox, "s3", session_of(sandbox, "enforced-states-role", not_lambda))
    other.put_object(Bucket=BUCKET, Key="out/by-states", Body=b"x")
    client(sandbox, "s3").put_object(Bucket=BUCKET, Key="out/by-operator", Body=b"x")
    assert error_of(lambda: client(sandbox, "s3").get_object(Bucket=BUCKET, Key="unlisted/gone")).startswith("NoSuchKey")
