"""The Lambda runner's role credentials (radstream.sandbox.role_sessions) against in-process moto STS:
an AssumeRole session named after the function, reused while an invocation still fits in it, renewed
after, and one per role and function."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws

from radstream.sandbox.role_sessions import RENEW_BEFORE_SECONDS, SESSION_SECONDS, RoleSessions

ROLE = "arn:aws:iam::123456789012:role/fn-role"
OTHER_ROLE = "arn:aws:iam::123456789012:role/other-role"


@pytest.fixture
def sts(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield lambda region: boto3.client("sts", region_name=region)


def test_a_session_is_the_functions_assumed_role(sts):
    session = RoleSessions(sts).get(ROLE, "rs-validate-metadata", "us-east-1")
    env = session.environment()
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    caller = boto3.client("sts", region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          aws_session_token=env["AWS_SESSION_TOKEN"]).get_caller_identity()
    assert caller["Arn"] == "arn:aws:sts::123456789012:assumed-role/fn-role/rs-validate-metadata"
    assert session.secret_access_key not in repr(session) and session.session_token not in repr(session)


def test_a_session_is_reused_until_an_invocation_might_outlive_it(sts):
    now = [time.time()]
    sessions = RoleSessions(sts, clock=lambda: now[0])
    first = sessions.get(ROLE, "fn", "us-east-1")
    now[0] += SESSION_SECONDS - RENEW_BEFORE_SECONDS - 60
    assert sessions.get(ROLE, "fn", "us-east-1") == first
    now[0] += 120
    renewed = sessions.get(ROLE, "fn", "us-east-1")
    assert renewed.access_key_id != first.access_key_id


def test_each_role_and_function_has_its_own_session(sts):
    sessions = RoleSessions(sts)
    keys = {sessions.get(role, fn, "us-east-1").access_key_id
            for role, fn in ((ROLE, "fn-a"), (ROLE, "fn-b"), (OTHER_ROLE, "fn-a"))}
    assert len(keys) == 3
