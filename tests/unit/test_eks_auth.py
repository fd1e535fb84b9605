"""What the sandbox's Kubernetes emulator accepts as a bearer token: what EKS accepts, checked on
tokens the product's own `eks_token` makes."""

from __future__ import annotations

import base64
import calendar
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import pytest

from radstream.kube.client import EKS_TOKEN_PREFIX, eks_token
from radstream.sandbox.kube.eks_auth import token_problem

KEY = "RSSANDBOXTESTKEY0123456789"


def make_token(key: str = KEY) -> str:
    session = boto3.Session(aws_access_key_id=key, aws_secret_access_key="testing", region_name="us-east-1")
    return eks_token(session, "radstream-test", "us-east-1")


def url_of(token: str) -> str:
    encoded = token[len(EKS_TOKEN_PREFIX):]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def token_of(url: str) -> str:
    return EKS_TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def with_query(token: str, **changes: str | None) -> str:
    """The token with query parameters replaced (or removed, for None)."""
    parts = urlsplit(url_of(token))
    query = {k: v for k, v in {**dict(parse_qsl(parts.query)), **changes}.items() if v is not None}
    return token_of(urlunsplit(parts._replace(query=urlencode(query))))


def signed_at(token: str) -> float:
    amz_date = dict(parse_qsl(urlsplit(url_of(token)).query))["X-Amz-Date"]
    return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


def test_a_fresh_token_from_eks_token_is_accepted() -> None:
    assert token_problem(make_token(), access_key_id=KEY) is None


def test_a_token_lives_its_lifetime_after_x_amz_date_whatever_x_amz_expires_says() -> None:
    token = make_token()
    start = signed_at(token)
    # X-Amz-Expires is 60, yet EKS honours the token for 15 minutes.
    assert token_problem(token, access_key_id=KEY, now=start + 899) is None
    assert "expired" in token_problem(token, access_key_id=KEY, now=start + 901)
    assert "expired" in token_problem(token, access_key_id=KEY, lifetime=2, now=start + 3)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"X-Amz-SignedHeaders": "host"}, "x-k8s-aws-id header is not signed"),
    ({"Action": "AssumeRole"}, "not GetCallerIdentity"),
    ({"X-Amz-Expires": "901"}, "X-Amz-Expires"),
    ({"X-Amz-Date": None}, "X-Amz-Date"),
    ({"X-Amz-Signature": None}, "not signed"),
    ({"RoleArn": "arn:aws:iam::123456789012:role/admin"}, "unexpected query parameter"),
])
def test_tokens_eks_would_refuse_are_refused(changes: dict[str, str | None], reason: str) -> None:
    assert reason in token_problem(with_query(make_token(), **changes), access_key_id=KEY)


def test_only_the_admitted_access_key_gets_in() -> None:
    assert "access key" in token_problem(make_token("SOMEONEELSE"), access_key_id=KEY)


@pytest.mark.parametrize("token", [
    "opaque-static-token",
    EKS_TOKEN_PREFIX + "%%%not-base64%%%",
    token_of("https://evil.example.com/?Action=GetCallerIdentity"),
    token_of("http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity"),
    EKS_TOKEN_PREFIX + "A" * 5000,
])
def test_anything_that_is_not_a_presigned_sts_url_is_refused(token: str) -> None:
    assert token_problem(token, access_key_id=KEY) is not None
